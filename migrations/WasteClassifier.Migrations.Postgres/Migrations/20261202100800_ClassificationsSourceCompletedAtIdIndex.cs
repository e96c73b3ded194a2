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
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md):
            // without blocking writes to classifications, an invalid leftover of an interrupted build dropped first, and a
            // build still running on the server waited for.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (source, completed_at, id) WHERE completed_at IS NOT NULL");
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
