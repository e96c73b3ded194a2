using Microsoft.EntityFrameworkCore.Migrations;

namespace WasteClassifier.Migrations.Postgres;

/// <summary>Indexes on tables that may be large by the time a migration adds them (see migrations/README.md).</summary>
public static class ConcurrentIndexes
{
    /// <summary>
    /// Builds index <paramref name="name"/> (<paramref name="definition"/>: <c>ON table (columns) [WHERE …]</c>) without
    /// blocking writes to its table: CREATE INDEX CONCURRENTLY, which PostgreSQL runs only outside a transaction. A build
    /// that failed (cancelled, a deadlock, a unique violation) leaves the index behind marked invalid and the migration
    /// unrecorded, and one that finished just before its process died leaves it valid and unrecorded: an invalid one is
    /// dropped and only what is missing is built, so the next start completes either way instead of failing on "already
    /// exists". A build whose process died may still be running on the server (PostgreSQL notices a dead client only when
    /// the statement ends): its index is invalid too, and dropping it would queue every query on the table behind that
    /// build, so the migration fails instead and the process's start-up retry (and its restarts) waits for the build to
    /// end. lock_timeout keeps the drop from holding readers behind a long transaction on the table.
    /// </summary>
    public static void CreateIndexConcurrently(this MigrationBuilder migrationBuilder, string name, string definition)
    {
        migrationBuilder.Sql($"""
            DO $$
            DECLARE
                builder integer;
            BEGIN
                SELECT p.pid INTO builder FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid
                WHERE c.relname = '{name}' AND c.relnamespace = current_schema()::regnamespace;
                IF builder IS NOT NULL THEN
                    RAISE EXCEPTION 'an earlier build of {name} is still running (server process %); migrating again once it ends', builder;
                END IF;
                IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                           WHERE c.relname = '{name}' AND c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid) THEN
                    SET LOCAL lock_timeout = '10s';
                    DROP INDEX {name};
                END IF;
            END $$;
            """);
        migrationBuilder.Sql($"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition};", suppressTransaction: true);
    }
}
