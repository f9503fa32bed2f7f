"""PostgreSQL runtime: pool, migrations, unit of work with inbox and outbox, outbox relay."""
