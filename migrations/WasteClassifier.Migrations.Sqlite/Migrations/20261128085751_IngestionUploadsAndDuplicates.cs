using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class IngestionUploadsAndDuplicates : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "duplicate_of_id",
                table: "classifications",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "direct_uploads",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    object_key = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    file_name = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    content_type = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    declared_size = table.Column<long>(type: "INTEGER", nullable: true),
                    source = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    classification_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    error_code = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    error = table.Column<string>(type: "TEXT", nullable: true),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    expires_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    committed_at = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_direct_uploads", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_classifications_duplicate_of_id",
                table: "classifications",
                column: "duplicate_of_id");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_source_image_id_created_at",
                table: "classifications",
                columns: new[] { "source", "image_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_direct_uploads_status_expires_at",
                table: "direct_uploads",
                columns: new[] { "status", "expires_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "direct_uploads");

            migrationBuilder.DropIndex(
                name: "ix_classifications_duplicate_of_id",
                table: "classifications");

            migrationBuilder.DropIndex(
                name: "ix_classifications_source_image_id_created_at",
                table: "classifications");

            migrationBuilder.DropColumn(
                name: "duplicate_of_id",
                table: "classifications");
        }
    }
}
