using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsSourceStatusCreatedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md): without blocking writes to
            // classifications. GET /v1/classifications?source=…&status=… in its order (created_at, id descending). It
            // replaces neither (source, created_at) nor (status, created_at): a list by one of them alone needs that one.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (source, status, created_at, id)");
        }

        private const string Name = "ix_classifications_source_status_created_at_id";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_source_status_created_at_id",
                table: "classifications");
        }
    }
}
