using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Postgres.Migrations
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
                type: "character varying(256)",
                maxLength: 256,
                nullable: false,
                defaultValue: "",
                oldClrType: typeof(string),
                oldType: "character varying(256)",
                oldMaxLength: 256,
                oldNullable: true);

            migrationBuilder.AddColumn<string>(
                name: "metrics_json",
                table: "models",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "origin",
                table: "models",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                defaultValue: "");

            migrationBuilder.AddColumn<Guid>(
                name: "training_job_id",
                table: "models",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "labelled_samples",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    image_id = table.Column<Guid>(type: "uuid", nullable: false),
                    label = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    origin = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    classification_id = table.Column<Guid>(type: "uuid", nullable: true),
                    training_job_id = table.Column<Guid>(type: "uuid", nullable: true),
                    created_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
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
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    stage = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    percent = table.Column<double>(type: "double precision", nullable: false),
                    options_json = table.Column<string>(type: "text", nullable: false),
                    error = table.Column<string>(type: "text", nullable: true),
                    cancel_requested = table.Column<bool>(type: "boolean", nullable: false),
                    candidate_version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    baseline_version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    candidate_metrics_json = table.Column<string>(type: "text", nullable: true),
                    baseline_metrics_json = table.Column<string>(type: "text", nullable: true),
                    decision_json = table.Column<string>(type: "text", nullable: true),
                    data_counts_json = table.Column<string>(type: "text", nullable: true),
                    trainer_id = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    created_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    started_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    heartbeat_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    finished_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
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
                type: "character varying(256)",
                maxLength: 256,
                nullable: true,
                oldClrType: typeof(string),
                oldType: "character varying(256)",
                oldMaxLength: 256);
        }
    }
}
