using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsWithoutSourceCreatedAtIdIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_classifications_created_at_id_without_source",
                table: "classifications",
                columns: new[] { "created_at", "id" },
                filter: "source IS NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_created_at_id_without_source",
                table: "classifications");
        }
    }
}
