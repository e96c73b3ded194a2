using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsFileName : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "file_name",
                table: "classifications",
                type: "TEXT",
                maxLength: 256,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "file_name",
                table: "classifications");
        }
    }
}
