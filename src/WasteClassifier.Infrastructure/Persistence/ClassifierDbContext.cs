using Microsoft.EntityFrameworkCore;

namespace WasteClassifier.Infrastructure.Persistence;

public class ClassifierDbContext(DbContextOptions<ClassifierDbContext> options) : DbContext(options)
{
    /// <summary>The unique index of labelled_samples.image_id (one sample per image), which PostgreSQL names in a violation.</summary>
    public const string LabelledSampleImageIndex = "ix_labelled_samples_image_id";

    /// <summary>Finished rows without a source by (completed_at, id): named, as (completed_at, id) has an index already.</summary>
    private const string WithoutSourceFinishedIndex = "ix_classifications_completed_at_id_without_source";

    /// <summary>Rows without a source by (created_at, id): named, as (created_at, id) has an index already.</summary>
    private const string WithoutSourceListIndex = "ix_classifications_created_at_id_without_source";

    public DbSet<StoredImage> Images => Set<StoredImage>();
    public DbSet<Classification> Classifications => Set<Classification>();
    public DbSet<ModelRecord> Models => Set<ModelRecord>();
    public DbSet<TrainingJob> TrainingJobs => Set<TrainingJob>();
    public DbSet<LabelledSample> LabelledSamples => Set<LabelledSample>();
    public DbSet<DirectUpload> DirectUploads => Set<DirectUpload>();
    public DbSet<IdempotentRequest> IdempotentRequests => Set<IdempotentRequest>();
    public DbSet<WorkerHeartbeat> WorkerHeartbeats => Set<WorkerHeartbeat>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<StoredImage>(image =>
        {
            image.ToTable("images");
            image.Property(i => i.ObjectKey).HasMaxLength(256);
            image.Property(i => i.ContentHash).HasMaxLength(64);
            image.Property(i => i.ContentType).HasMaxLength(128);
            image.Property(i => i.FileName).HasMaxLength(256);
            image.Property(i => i.Format).HasMaxLength(32);
            image.HasIndex(i => i.ObjectKey).IsUnique();
            image.HasIndex(i => i.ContentHash);
        });

        modelBuilder.Entity<Classification>(row =>
        {
            row.ToTable("classifications");
            row.Property(c => c.Source).HasMaxLength(128);
            row.Property(c => c.FileName).HasMaxLength(256);
            row.Property(c => c.Status).HasMaxLength(16);
            row.Property(c => c.IdempotencyKey).HasMaxLength(128);
            row.Property(c => c.PredictedClass).HasMaxLength(64);
            row.Property(c => c.ModelVersion).HasMaxLength(128);
            row.Property(c => c.WorkerId).HasMaxLength(128);
            row.Property(c => c.ErrorCode).HasMaxLength(64);
            // Every claim adds one: a result saved with the claim's count overwrites nothing written by a later claim of
            // the same row (a duplicate delivery), and a save that finds another count is dropped (ClassificationBatchProcessor).
            row.Property(c => c.Attempts).IsConcurrencyToken();
            row.HasOne(c => c.Image).WithMany().HasForeignKey(c => c.ImageId);
            // Listing is newest first, optionally by source or status; the id breaks ties for the cursor.
            row.HasIndex(c => new { c.CreatedAt, c.Id });
            row.HasIndex(c => new { c.Source, c.CreatedAt });
            row.HasIndex(c => new { c.Status, c.CreatedAt });
            // Both filters at once: walking either index above and skipping the other filter's misses read every row of the
            // status or source when few match (at 1,000,000 rows, a pair matching none: 75,000 rows, about 120 ms a page).
            row.HasIndex(c => new { c.Source, c.Status, c.CreatedAt, c.Id });
            // The list's rows without a source ("-"): source IS NULL is no equality, so neither index with source first is in
            // the list's order for them, and walking (created_at, id) or (status, created_at) read a page ÷ their share of rows
            // (at 1,000,000 rows, 4 % without a source: 2,500 rows a page; with a status none of them has, under a generic plan,
            // every row of the status, 75,000). Partial to those rows, so each is small (2 MB there).
            row.HasIndex(c => new { c.CreatedAt, c.Id }, WithoutSourceListIndex).HasDatabaseName(WithoutSourceListIndex).HasFilter("source IS NULL");
            row.HasIndex(c => new { c.Status, c.CreatedAt, c.Id }).HasDatabaseName("ix_classifications_status_created_at_id_without_source").HasFilter("source IS NULL");
            // The list's predicted_class filter, walked newest first as the list orders (a backward scan): without it a rare
            // or absent class read the whole table per page. Partial: rows not yet classified (no class) are never listed by
            // class, and entries for them cost the worker's insert and claim an index write each.
            row.HasIndex(c => new { c.PredictedClass, c.CreatedAt, c.Id }).HasFilter("predicted_class IS NOT NULL");
            // GET /v1/classifications/finished walks rows by (completed_at, id), the order it lists and its cursor's position;
            // it serves what the old completed_at index did too, so it replaces that one.
            row.HasIndex(c => new { c.CompletedAt, c.Id });
            // Its source filter: walking (completed_at, id) and skipping other sources read a page ÷ the source's share of rows
            // (1 % of rows: 9,000 a page; a rare one under a generic plan: 340,000). Partial: unfinished rows are never listed there.
            row.HasIndex(c => new { c.Source, c.CompletedAt, c.Id }).HasFilter("completed_at IS NOT NULL");
            // And its rows without a source ("-"): source IS NULL is no equality, so the index above is not in the list's order
            // for them, and walking (completed_at, id) read a page ÷ their share of rows (4 %: 2,500 rows; a generic plan
            // chose a bitmap scan of all of them, 40,000). Partial to those rows: the others have the index above.
            row.HasIndex(c => new { c.CompletedAt, c.Id }, WithoutSourceFinishedIndex).HasDatabaseName(WithoutSourceFinishedIndex)
                .HasFilter("source IS NULL AND completed_at IS NOT NULL");
            // A repeated Idempotency-Key finds the original rows; the unique index settles concurrent repeats. Keys are the
            // caller's own: the scope ('' for callers without an API key, never null, which a unique index would not compare).
            row.HasIndex(c => new { c.IdempotencyKey, c.IdempotencyScope, c.IdempotencyIndex }).IsUnique().HasDatabaseName("ix_classifications_idempotency");
            // For the sweep of expired keys (Api:IdempotencyRetentionHours), oldest first. Partial: only keyed rows, and of those only
            // the retention's worth once swept, so it stays small however many rows the table holds.
            row.HasIndex(c => c.CreatedAt, "ix_classifications_idempotency_created_at").HasDatabaseName("ix_classifications_idempotency_created_at").HasFilter("idempotency_key IS NOT NULL");
            // Duplicate frames: the earlier row of the same image from the same source, and the rows waiting on it.
            row.HasIndex(c => new { c.Source, c.ImageId, c.CreatedAt });
            row.HasIndex(c => c.DuplicateOfId);
        });

        modelBuilder.Entity<DirectUpload>(upload =>
        {
            upload.ToTable("direct_uploads");
            upload.Property(u => u.ObjectKey).HasMaxLength(256);
            upload.Property(u => u.FileName).HasMaxLength(256);
            upload.Property(u => u.ContentType).HasMaxLength(128);
            upload.Property(u => u.Source).HasMaxLength(128);
            // Two commits of the same upload race on its status; the loser's whole commit rolls back.
            upload.Property(u => u.Status).HasMaxLength(16).IsConcurrencyToken();
            upload.Property(u => u.ErrorCode).HasMaxLength(64);
            // The expiry sweep looks for pending uploads past their time.
            upload.HasIndex(u => new { u.Status, u.ExpiresAt });
            // And for committed or refused uploads whose staged object is to be deleted again (null for all others).
            upload.HasIndex(u => u.CleanupAt);
        });

        modelBuilder.Entity<ModelRecord>(model =>
        {
            model.ToTable("models");
            model.HasKey(m => m.Version);
            model.Property(m => m.Version).HasMaxLength(128);
            model.Property(m => m.ParentVersion).HasMaxLength(128);
            model.Property(m => m.Status).HasMaxLength(16);
            model.Property(m => m.ArtifactPrefix).HasMaxLength(256);
            model.Property(m => m.Origin).HasMaxLength(16);
            model.HasIndex(m => m.Status);
        });

        modelBuilder.Entity<TrainingJob>(job =>
        {
            job.ToTable("training_jobs");
            job.Property(j => j.Status).HasMaxLength(16);
            job.Property(j => j.Stage).HasMaxLength(16);
            job.Property(j => j.CandidateVersion).HasMaxLength(128);
            job.Property(j => j.BaselineVersion).HasMaxLength(128);
            job.Property(j => j.TrainerId).HasMaxLength(128);
            job.HasIndex(j => new { j.Status, j.CreatedAt });
        });

        modelBuilder.Entity<LabelledSample>(sample =>
        {
            sample.ToTable("labelled_samples");
            sample.Property(s => s.Label).HasMaxLength(64);
            sample.Property(s => s.Origin).HasMaxLength(16);
            sample.HasOne(s => s.Image).WithMany().HasForeignKey(s => s.ImageId);
            // One label per image: a later correction replaces an earlier one.
            sample.HasIndex(s => s.ImageId).IsUnique().HasDatabaseName(LabelledSampleImageIndex);
            sample.HasIndex(s => s.TrainingJobId);
        });

        modelBuilder.Entity<IdempotentRequest>(request =>
        {
            request.ToTable("idempotent_requests");
            // The key settles concurrent repeats: the later save fails on it and is answered with the earlier one's result.
            request.HasKey(r => new { r.Scope, r.Route, r.Key });
            request.Property(r => r.Route).HasMaxLength(32);
            request.Property(r => r.Key).HasMaxLength(128);
            request.Property(r => r.Fingerprint).HasMaxLength(64);
            // For the sweep of expired rows (Api:IdempotencyRetentionHours).
            request.HasIndex(r => r.CreatedAt);
        });

        modelBuilder.Entity<WorkerHeartbeat>(worker =>
        {
            worker.ToTable("worker_heartbeats");
            worker.HasKey(w => w.WorkerId);
            worker.Property(w => w.WorkerId).HasMaxLength(128);
            worker.Property(w => w.HostName).HasMaxLength(256);
            worker.Property(w => w.ModelVersion).HasMaxLength(128);
            // GET /v1/workers lists those seen within a window, and the sweep deletes those not seen for the retention.
            worker.HasIndex(w => w.LastSeenAt);
        });
    }
}
