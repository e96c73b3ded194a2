using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class ClassificationsPredictedClassIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Built without blocking writes to classifications, which may be large by now (ConcurrentIndexes says how).
            migrationBuilder.CreateIndexConcurrently(Name, "ON classifications (predicted_class, created_at, id) WHERE predicted_class IS NOT NULL");
        }

        private const string Name = "ix_classifications_predicted_class_created_at_id";

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_predicted_class_created_at_id",
                table: "classifications");
        }
    }
}
