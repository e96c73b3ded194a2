using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class IdempotencyKeyScopeAndFingerprint : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_idempotency_key_idempotency_index",
                table: "classifications");

            migrationBuilder.AddColumn<string>(
                name: "idempotency_fingerprint",
                table: "classifications",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "idempotency_scope",
                table: "classifications",
                type: "text",
                nullable: false,
                defaultValue: "");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_idempotency",
                table: "classifications",
                columns: new[] { "idempotency_key", "idempotency_scope", "idempotency_index" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_idempotency",
                table: "classifications");

            migrationBuilder.DropColumn(
                name: "idempotency_fingerprint",
                table: "classifications");

            migrationBuilder.DropColumn(
                name: "idempotency_scope",
                table: "classifications");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_idempotency_key_idempotency_index",
                table: "classifications",
                columns: new[] { "idempotency_key", "idempotency_index" },
                unique: true);
        }
    }
}
