using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class IdempotentRequestsCreatedAtIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_idempotent_requests_created_at",
                table: "idempotent_requests",
                column: "created_at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_idempotent_requests_created_at",
                table: "idempotent_requests");
        }
    }
}
