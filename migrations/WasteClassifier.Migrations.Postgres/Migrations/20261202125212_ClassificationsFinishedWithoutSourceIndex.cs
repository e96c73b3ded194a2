using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsFinishedWithoutSourceIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md): without blocking writes to
            // classifications. GET /v1/classifications/finished?source=- : source IS NULL is no equality, so the partial
            // (source, completed_at, id) index is not in the list's order for it.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (completed_at, id) WHERE source IS NULL AND completed_at IS NOT NULL");
        }

        private const string Name = "ix_classifications_completed_at_id_without_source";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_completed_at_id_without_source",
                table: "classifications");
        }
    }
}
