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
            // PostgreSQL runs only outside a transaction. A concurrent build that was interrupted (a timeout, a stopped
            // pod) leaves the index behind marked invalid and this migration unrecorded, and one that finished just
            // before its process died leaves it valid and unrecorded: drop an invalid one and build only what is missing,
            // so the next start completes either way instead of failing on "already exists".
            migrationBuilder.Sql($"""
                DO $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                               WHERE c.relname = '{Name}' AND c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid) THEN
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
