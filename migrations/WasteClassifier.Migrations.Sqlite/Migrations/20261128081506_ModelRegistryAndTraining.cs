using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class ModelRegistryAndTraining : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<string>(
                name: "artifact_prefix",
                table: "models",
                type: "TEXT",
                maxLength: 256,
                nullable: false,
                defaultValue: "",
                oldClrType: typeof(string),
                oldType: "TEXT",
                oldMaxLength: 256,
                oldNullable: true);

            migrationBuilder.AddColumn<string>(
                name: "metrics_json",
                table: "models",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "origin",
                table: "models",
                type: "TEXT",
                maxLength: 16,
                nullable: false,
                defaultValue: "");

            migrationBuilder.AddColumn<Guid>(
                name: "training_job_id",
                table: "models",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "labelled_samples",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    image_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    label = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    origin = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    classification_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    training_job_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_labelled_samples", x => x.id);
                    table.ForeignKey(
                        name: "fk_labelled_samples_images_image_id",
                        column: x => x.image_id,
                        principalTable: "images",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "training_jobs",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    stage = table.Column<string>(type: "TEXT", maxLength: 16, nullable: true),
                    percent = table.Column<double>(type: "REAL", nullable: false),
                    options_json = table.Column<string>(type: "TEXT", nullable: false),
                    error = table.Column<string>(type: "TEXT", nullable: true),
                    cancel_requested = table.Column<bool>(type: "INTEGER", nullable: false),
                    candidate_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    baseline_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    candidate_metrics_json = table.Column<string>(type: "TEXT", nullable: true),
                    baseline_metrics_json = table.Column<string>(type: "TEXT", nullable: true),
                    decision_json = table.Column<string>(type: "TEXT", nullable: true),
                    data_counts_json = table.Column<string>(type: "TEXT", nullable: true),
                    trainer_id = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    started_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    heartbeat_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    finished_at = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_training_jobs", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_labelled_samples_image_id",
                table: "labelled_samples",
                column: "image_id",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_labelled_samples_training_job_id",
                table: "labelled_samples",
                column: "training_job_id");

            migrationBuilder.CreateIndex(
                name: "ix_training_jobs_status_created_at",
                table: "training_jobs",
                columns: new[] { "status", "created_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "labelled_samples");

            migrationBuilder.DropTable(
                name: "training_jobs");

            migrationBuilder.DropColumn(
                name: "metrics_json",
                table: "models");

            migrationBuilder.DropColumn(
                name: "origin",
                table: "models");

            migrationBuilder.DropColumn(
                name: "training_job_id",
                table: "models");

            migrationBuilder.AlterColumn<string>(
                name: "artifact_prefix",
                table: "models",
                type: "TEXT",
                maxLength: 256,
                nullable: true,
                oldClrType: typeof(string),
                oldType: "TEXT",
                oldMaxLength: 256);
        }
    }
}
