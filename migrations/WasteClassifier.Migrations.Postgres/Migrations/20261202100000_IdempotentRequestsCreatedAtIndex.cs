using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class IdempotentRequestsCreatedAtIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As 20261201015823_ClassificationsPredictedClassIndex builds its index (see there and migrations/README.md): the
            // table takes a row with every keyed training upload, which a plain CREATE INDEX would hold while it builds.
            migrationBuilder.Sql($"""
                DO $$
                DECLARE
                    builder integer;
                BEGIN
                    SELECT p.pid INTO builder FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid
                    WHERE c.relname = '{Name}' AND c.relnamespace = current_schema()::regnamespace;
                    IF builder IS NOT NULL THEN
                        RAISE EXCEPTION 'an earlier build of {Name} is still running (server process %); migrating again once it ends', builder;
                    END IF;
                    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                               WHERE c.relname = '{Name}' AND c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid) THEN
                        SET LOCAL lock_timeout = '10s';
                        DROP INDEX {Name};
                    END IF;
                END $$;
                """);
            migrationBuilder.Sql($"""
                CREATE INDEX CONCURRENTLY IF NOT EXISTS {Name} ON idempotent_requests (created_at);
                """, suppressTransaction: true);
        }

        private const string Name = "ix_idempotent_requests_created_at";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_idempotent_requests_created_at",
                table: "idempotent_requests");
        }
    }
}
