using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsCompletedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md):
            // without blocking writes to classifications, an invalid leftover of an interrupted build dropped first, and a
            // build still running on the server waited for. The new index covers what the old one served (its prefix), so
            // the old one goes once the new one is there, also without blocking writes.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (completed_at, id)");
            migrationBuilder.Sql("DROP INDEX CONCURRENTLY IF EXISTS ix_classifications_completed_at;", suppressTransaction: true);
        }

        private const string Name = "ix_classifications_completed_at_id";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_completed_at_id",
                table: "classifications");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_completed_at",
                table: "classifications",
                column: "completed_at");
        }
    }
}
