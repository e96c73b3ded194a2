using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WasteClassifier.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class WorkerHeartbeats : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "worker_heartbeats",
                columns: table => new
                {
                    worker_id = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    host_name = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    process_started_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    model_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    heartbeat_seconds = table.Column<int>(type: "INTEGER", nullable: false),
                    last_seen_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    stopped_at = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_worker_heartbeats", x => x.worker_id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_worker_heartbeats_last_seen_at",
                table: "worker_heartbeats",
                column: "last_seen_at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "worker_heartbeats");
        }
    }
}
