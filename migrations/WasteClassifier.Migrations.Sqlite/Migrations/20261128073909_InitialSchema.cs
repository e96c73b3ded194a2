using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class InitialSchema : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "images",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    object_key = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    content_hash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    size_bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    content_type = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    file_name = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    format = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    width = table.Column<int>(type: "INTEGER", nullable: false),
                    height = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_images", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    parent_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    card_json = table.Column<string>(type: "TEXT", nullable: false),
                    artifact_prefix = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    promoted_at = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_models", x => x.version);
                });

            migrationBuilder.CreateTable(
                name: "classifications",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    image_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    source = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    idempotency_key = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    idempotency_index = table.Column<int>(type: "INTEGER", nullable: false),
                    predicted_class = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    confidence = table.Column<double>(type: "REAL", nullable: true),
                    all_predictions = table.Column<string>(type: "TEXT", nullable: true),
                    model_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    worker_id = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    error_code = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    error = table.Column<string>(type: "TEXT", nullable: true),
                    batch_size = table.Column<int>(type: "INTEGER", nullable: true),
                    queue_ms = table.Column<double>(type: "REAL", nullable: true),
                    inference_ms = table.Column<double>(type: "REAL", nullable: true),
                    total_ms = table.Column<double>(type: "REAL", nullable: true),
                    attempts = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    published_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    started_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    completed_at = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_classifications", x => x.id);
                    table.ForeignKey(
                        name: "fk_classifications_images_image_id",
                        column: x => x.image_id,
                        principalTable: "images",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_classifications_completed_at",
                table: "classifications",
                column: "completed_at");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_created_at_id",
                table: "classifications",
                columns: new[] { "created_at", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_classifications_idempotency_key_idempotency_index",
                table: "classifications",
                columns: new[] { "idempotency_key", "idempotency_index" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_classifications_image_id",
                table: "classifications",
                column: "image_id");

            migrationBuilder.CreateIndex(
                name: "ix_classifications_source_created_at",
                table: "classifications",
                columns: new[] { "source", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_classifications_status_created_at",
                table: "classifications",
                columns: new[] { "status", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_images_content_hash",
                table: "images",
                column: "content_hash");

            migrationBuilder.CreateIndex(
                name: "ix_images_object_key",
                table: "images",
                column: "object_key",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_models_status",
                table: "models",
                column: "status");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "classifications");

            migrationBuilder.DropTable(
                name: "models");

            migrationBuilder.DropTable(
                name: "images");
        }
    }
}
