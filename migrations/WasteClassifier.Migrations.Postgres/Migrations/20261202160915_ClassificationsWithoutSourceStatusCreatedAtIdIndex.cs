using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsWithoutSourceStatusCreatedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md): without blocking writes to
            // classifications. GET /v1/classifications?source=-&status=… in its order, as (source, status, created_at, id)
            // is not for source IS NULL.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (status, created_at, id) WHERE source IS NULL");
        }

        private const string Name = "ix_classifications_status_created_at_id_without_source";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_status_created_at_id_without_source",
                table: "classifications");
        }
    }
}
