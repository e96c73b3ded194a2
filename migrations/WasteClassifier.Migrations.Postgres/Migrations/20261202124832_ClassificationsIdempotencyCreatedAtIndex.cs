using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsIdempotencyCreatedAtIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md):
            // without blocking writes to classifications, an invalid leftover of an interrupted build dropped first, and a
            // build still running on the server waited for.
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (created_at) WHERE idempotency_key IS NOT NULL");
        }

        private const string Name = "ix_classifications_idempotency_created_at";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_idempotency_created_at",
                table: "classifications");
        }
    }
}
