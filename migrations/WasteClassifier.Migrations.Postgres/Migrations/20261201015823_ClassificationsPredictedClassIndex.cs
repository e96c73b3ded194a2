using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsPredictedClassIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Built without blocking writes to classifications, which may be large by now: CREATE INDEX CONCURRENTLY, which
            // PostgreSQL runs only outside a transaction. A build that failed (cancelled, a deadlock, a unique violation)
            // leaves the index behind marked invalid and this migration unrecorded, and one that finished just before its
            // process died leaves it valid and unrecorded: drop an invalid one and build only what is missing, so the next
            // start completes either way instead of failing on "already exists". A build whose process died may still be
            // running on the server (PostgreSQL notices a dead client only when the statement ends): its index is invalid
            // too, and dropping it would queue every query on the table behind that build, so this migration fails instead
            // and the process's start-up retry (and its restarts) waits for the build to end. lock_timeout keeps the drop
            // from holding readers behind a long transaction on the table.
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
                CREATE INDEX CONCURRENTLY IF NOT EXISTS {Name} ON classifications (predicted_class, created_at, id)
                WHERE predicted_class IS NOT NULL;
                """, suppressTransaction: true);
        }

        private const string Name = "ix_classifications_predicted_class_created_at_id";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_predicted_class_created_at_id",
                table: "classifications");
        }
    }
}
