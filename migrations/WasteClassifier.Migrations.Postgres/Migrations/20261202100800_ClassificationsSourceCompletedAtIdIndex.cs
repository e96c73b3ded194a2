using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsSourceCompletedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As 20261201015823_ClassificationsPredictedClassIndex builds its index (see there and migrations/README.md):
            // without blocking writes to classifications, an invalid leftover of an interrupted build dropped first, and a
            // build still running on the server waited for.
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
                CREATE INDEX CONCURRENTLY IF NOT EXISTS {Name} ON classifications (source, completed_at, id) WHERE completed_at IS NOT NULL;
                """, suppressTransaction: true);
        }

        private const string Name = "ix_classifications_source_completed_at_id";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_source_completed_at_id",
                table: "classifications");
        }
    }
}
