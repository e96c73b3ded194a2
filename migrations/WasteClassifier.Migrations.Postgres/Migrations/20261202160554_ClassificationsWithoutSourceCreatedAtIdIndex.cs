using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsWithoutSourceCreatedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md): without blocking writes to
            // classifications. GET /v1/classifications?source=- in its order (created_at, id descending): source IS NULL is no
            // equality, so (source, created_at) is not in the list's order for it.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (created_at, id) WHERE source IS NULL");
        }

        private const string Name = "ix_classifications_created_at_id_without_source";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_created_at_id_without_source",
                table: "classifications");
        }
    }
}
