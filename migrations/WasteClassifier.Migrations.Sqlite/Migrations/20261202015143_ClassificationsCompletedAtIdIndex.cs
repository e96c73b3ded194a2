using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsCompletedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_completed_at",
                table: "classifications");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_completed_at_id",
                table: "classifications",
                columns: new[] { "completed_at", "id" });
        }

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
