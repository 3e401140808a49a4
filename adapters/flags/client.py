"""The ``Flags`` port over the OpenFeature SDK: every evaluation goes through an OpenFeature client.

The SDK keeps its providers in one registry per process. Each ``OpenFeatureFlags`` binds its
provider to a domain of its own, so that two apps in one process (tests, an embedding) never
answer with each other's rules, and unbinds it on ``close``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from openfeature import api
from openfeature.evaluation_context import EvaluationContext, EvaluationContextAttribute
from openfeature.provider import FeatureProvider
from openfeature.provider.no_op_provider import NoOpProvider

from commerce.core.flags import DEFAULT, ERROR, KNOWN, Evaluation, FlagContext, FlagsReport

_UNBOUND = NoOpProvider()
"""What a closed instance's domain is left with: the SDK has no way to remove a domain."""


class OpenFeatureFlags:
    """Evaluates the flags ``core.flags`` knows with ``provider``, through the OpenFeature API.

    The tenant is the evaluation's targeting key (and its ``tenant`` attribute), the role its
    ``role`` attribute. ``report`` says what the rules are, if the provider can tell.
    """

    def __init__(
        self, provider: FeatureProvider, report: Callable[[], FlagsReport] | None = None
    ) -> None:
        self._domain = f"commerce-flags-{uuid.uuid4().hex}"
        self._report = report
        self._name = provider.get_metadata().name
        # Initialised here, in this thread: a provider that cannot start stops the start.
        api.set_provider_and_wait(provider, self._domain)
        self._client = api.get_client(self._domain)

    def evaluate(self, flag: str, context: FlagContext) -> Evaluation:
        known = KNOWN.get(flag)
        default = known.default if known is not None else False
        attributes: dict[str, EvaluationContextAttribute] = {"tenant": context.tenant}
        if context.role is not None:
            attributes["role"] = context.role.name
        details = self._client.get_boolean_details(
            flag, default, EvaluationContext(context.tenant, attributes)
        )
        value = bool(details.value)
        if details.error_code is not None:
            word = "on" if value else "off"
            return Evaluation(
                flag,
                value,
                ERROR,
                "error",
                f"{details.error_code}: {details.error_message}; the built-in default, {word}",
            )
        metadata = details.flag_metadata
        return Evaluation(
            flag,
            value,
            str(details.reason or DEFAULT),
            str(metadata.get("rule", "")),
            str(metadata.get("detail", "")),
        )

    def report(self) -> FlagsReport:
        if self._report is None:
            return FlagsReport(f"OpenFeature provider {self._name!r}", dict.fromkeys(KNOWN, ()))
        return self._report()

    def close(self) -> None:
        api.set_provider_and_wait(_UNBOUND, self._domain)
