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
            migrationBuilder.CreateIndex(
                name: "ix_classifications_predicted_class_created_at_id",
                table: "classifications",
                columns: new[] { "predicted_class", "created_at", "id" },
                filter: "predicted_class IS NOT NULL")
                // Built without blocking writes to classifications, which may be large by now. Npgsql runs a
                // concurrent build outside the migration's transaction, as PostgreSQL requires.
                .Annotation("Npgsql:CreatedConcurrently", true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_classifications_predicted_class_created_at_id",
                table: "classifications");
        }
    }
}
