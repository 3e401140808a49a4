"""The hexagon: domain types, ports, use cases, errors and log events; standard library only."""
