-- The commerce schema for cockroachdb, at revision 0005.
-- Generated from the migrations by `commerce db upgrade --sql`; do not edit.
-- Running it by hand leaves the database where `commerce db upgrade` would.
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE IF NOT EXISTS tenants (
    id VARCHAR(63) NOT NULL, 
    name TEXT NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_tenants PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS chains (
    id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    name TEXT NOT NULL, 
    phone TEXT NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_chains PRIMARY KEY (id), 
    CONSTRAINT fk_chains_tenant_id_tenants FOREIGN KEY(tenant_id) REFERENCES tenants (id), 
    CONSTRAINT uq_chains_tenant_id_id UNIQUE (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS stores (
    id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    chain_id BIGINT NOT NULL, 
    name TEXT NOT NULL, 
    phone TEXT NOT NULL, 
    address TEXT NOT NULL, 
    postal_code TEXT NOT NULL, 
    city TEXT NOT NULL, 
    country TEXT NOT NULL, 
    active BOOLEAN NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_stores PRIMARY KEY (id), 
    CONSTRAINT fk_stores_tenant_id_chain_id_chains FOREIGN KEY(tenant_id, chain_id) REFERENCES chains (tenant_id, id), 
    CONSTRAINT uq_stores_tenant_id_id UNIQUE (tenant_id, id)
);

CREATE INDEX IF NOT EXISTS ix_stores_chain_id_id ON stores (chain_id, id);

CREATE TABLE IF NOT EXISTS items (
    id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    sku TEXT NOT NULL, 
    name TEXT NOT NULL, 
    cost NUMERIC(12, 2) NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_items PRIMARY KEY (id), 
    CONSTRAINT fk_items_tenant_id_tenants FOREIGN KEY(tenant_id) REFERENCES tenants (id), 
    CONSTRAINT uq_items_tenant_id_sku UNIQUE (tenant_id, sku), 
    CONSTRAINT uq_items_tenant_id_id UNIQUE (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS inventory_levels (
    store_id BIGINT NOT NULL, 
    item_id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    quantity BIGINT NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_inventory_levels PRIMARY KEY (store_id, item_id), 
    CONSTRAINT ck_inventory_levels_quantity_not_negative CHECK (quantity >= 0), 
    CONSTRAINT fk_inventory_levels_tenant_id_store_id_stores FOREIGN KEY(tenant_id, store_id) REFERENCES stores (tenant_id, id), 
    CONSTRAINT fk_inventory_levels_tenant_id_item_id_items FOREIGN KEY(tenant_id, item_id) REFERENCES items (tenant_id, id)
);

CREATE INDEX IF NOT EXISTS ix_inventory_levels_item_id_store_id ON inventory_levels (item_id, store_id);

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;

-- Running upgrade 0001 -> 0002

CREATE TABLE IF NOT EXISTS inventory_changes (
    store_id BIGINT NOT NULL, 
    id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    item_id BIGINT NOT NULL, 
    delta BIGINT NOT NULL, 
    quantity_after BIGINT NOT NULL, 
    reason VARCHAR(32) NOT NULL, 
    reference TEXT, 
    actor TEXT NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_inventory_changes PRIMARY KEY (store_id, id), 
    CONSTRAINT ck_inventory_changes_quantity_after_not_negative CHECK (quantity_after >= 0)
);

CREATE INDEX IF NOT EXISTS ix_inventory_changes_store_id_item_id_id ON inventory_changes (store_id, item_id, id);

CREATE INDEX IF NOT EXISTS ix_inventory_changes_store_id_item_id_created_at_id ON inventory_changes (store_id, item_id, created_at, id);

INSERT INTO inventory_changes (store_id, id, tenant_id, item_id, delta, quantity_after, reason, reference, actor, created_at) SELECT store_id, ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY item_id), tenant_id, item_id, quantity, quantity, 'count', 'opening balance', 'migration', updated_at FROM inventory_levels WHERE 1 = 1 ON CONFLICT (store_id, id) DO NOTHING;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id VARCHAR(63) NOT NULL, 
    key TEXT NOT NULL, 
    fingerprint TEXT NOT NULL, 
    state VARCHAR(16) NOT NULL, 
    response_status INTEGER, 
    response_headers TEXT, 
    response_body BYTEA, 
    claimed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (tenant_id, key), 
    CONSTRAINT ck_idempotency_keys_state_known CHECK (state IN ('claimed', 'completed'))
);

CREATE INDEX IF NOT EXISTS ix_idempotency_keys_claimed_at ON idempotency_keys (claimed_at);

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

CREATE TABLE IF NOT EXISTS api_keys (
    id BIGINT NOT NULL, 
    tenant_id VARCHAR(63) NOT NULL, 
    prefix VARCHAR(16) NOT NULL, 
    secret_hash VARCHAR(64) NOT NULL, 
    "role" VARCHAR(16) NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
    revoked_at TIMESTAMP WITH TIME ZONE, 
    last_used_at TIMESTAMP WITH TIME ZONE, 
    CONSTRAINT pk_api_keys PRIMARY KEY (id), 
    CONSTRAINT fk_api_keys_tenant_id_tenants FOREIGN KEY(tenant_id) REFERENCES tenants (id), 
    CONSTRAINT uq_api_keys_prefix UNIQUE (prefix), 
    CONSTRAINT ck_api_keys_role_known CHECK ("role" IN ('reader', 'writer', 'admin'))
);

CREATE INDEX IF NOT EXISTS ix_api_keys_tenant_id_id ON api_keys (tenant_id, id);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

-- Running upgrade 0003 -> 0004

ALTER TABLE tenants ADD CONSTRAINT ck_tenants_id_length CHECK (length(id) BETWEEN 1 AND 63);

ALTER TABLE items ADD CONSTRAINT ck_items_cost_not_negative CHECK (cost >= 0);

ALTER TABLE items ADD CONSTRAINT ck_items_sku_not_empty CHECK (sku <> '');

ALTER TABLE inventory_changes ADD CONSTRAINT ck_inventory_changes_delta_not_zero CHECK (delta <> 0 OR reason = 'count');

ALTER TABLE inventory_changes ADD CONSTRAINT ck_inventory_changes_quantity_before_not_negative CHECK (quantity_after - delta >= 0);

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';

-- Running upgrade 0004 -> 0005

CREATE INDEX IF NOT EXISTS ix_inventory_changes_store_id_created_at_id ON inventory_changes (store_id, created_at, id);

UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';

