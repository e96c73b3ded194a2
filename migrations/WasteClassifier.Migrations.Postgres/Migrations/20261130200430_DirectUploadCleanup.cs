using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class DirectUploadCleanup : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "cleanup_at",
                table: "direct_uploads",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_direct_uploads_cleanup_at",
                table: "direct_uploads",
                column: "cleanup_at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_direct_uploads_cleanup_at",
                table: "direct_uploads");

            migrationBuilder.DropColumn(
                name: "cleanup_at",
                table: "direct_uploads");
        }
    }
}
