using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class IdempotentRequestsCreatedAtIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // As ConcurrentIndexes.CreateIndexConcurrently says (and migrations/README.md): the
            // table takes a row with every keyed training upload, which a plain CREATE INDEX would hold while it builds.
            migrationBuilder.CreateIndexConcurrently(Name, "ON idempotent_requests (created_at)");
        }

        private const string Name = "ix_idempotent_requests_created_at";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_idempotent_requests_created_at",
                table: "idempotent_requests");
        }
    }
}
