using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

public sealed class TrainingJobSubmitterTests
{
    [Fact]
    public async Task Submit_BrokerUnreachable_JobIsAcceptedAndLeftQueuedForTheSweeper()
    {
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var submitter = NewSubmitter(db);

        var (result, error) = await submitter.SubmitAsync([], [], new TrainingJobOptions(), CancellationToken.None);

        // The job is recorded before the send, so it is accepted: a trainer's sweeper sends it once the broker is back.
        Assert.Null(error);
        var job = await db.TrainingJobs.AsNoTracking().SingleAsync();
        Assert.Equal(result!.Job.Id, job.Id);
        Assert.Equal(TrainingJobStatus.Queued, job.Status);
    }

    [Fact]
    public async Task Submit_SameBytesTwiceInOneRequestUnderTwoLabels_TheLaterWinsAndIsReported()
    {
        // The README says the latest label wins; of two files in one request the first one's was kept, unreported.
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var dup = Png(1);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, dup), File(1, Png(2)), File(2, dup)], ["paper", "glass", "cardboard"],
            new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        Assert.Equal(3, result!.Accepted);
        Assert.Equal(["cardboard", "glass"], (await db.LabelledSamples.AsNoTracking().ToListAsync()).Select(s => s.Label).Order());
        var relabelled = Assert.Single(result.Relabelled);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(2, "paper", "cardboard", PreviousIndex: 0), relabelled);
    }

    [Fact]
    public async Task Submit_ExistingSampleUnderAnotherLabel_IsRelabelledAndReported()
    {
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var glass = Png(1);
        var (first, _) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        Assert.Empty(first!.Relabelled);
        var glassImage = (await db.LabelledSamples.AsNoTracking().SingleAsync()).ImageId;

        var (second, error) = await NewSubmitter(db).SubmitAsync([File(0, Png(2)), File(1, glass)], ["metal", "metal"], new TrainingJobOptions(), CancellationToken.None);

        // The latest label wins, as the README says, but the caller is told: this went unseen until /predict answered metal.
        Assert.Null(error);
        var relabelled = Assert.Single(second!.Relabelled);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(1, "glass", "metal", PreviousIndex: null), relabelled);
        Assert.Equal("metal", (await db.LabelledSamples.AsNoTracking().SingleAsync(s => s.ImageId == glassImage)).Label);
    }

    // One store and one process's seen hashes per test (xunit makes an instance per test), as one API replica has.
    private readonly MemoryObjectStore store = new();
    private readonly SeenContentHashes seen = new();

    private TrainingJobSubmitter NewSubmitter(ClassifierDbContext db)
    {
        var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
        return new TrainingJobSubmitter(db, new ImageIntake(db, store, new UploadOptions(), seen, TimeProvider.System), registry,
            new RefusingSendEndpoints(), new MessagingOptions(), new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);
    }

    private static byte[] Png(byte shade) => TestImages.SolidPng(16, 16, new Rgb24(shade, 90, 200));

    private static UploadedImage File(int index, byte[] bytes) => new(index, $"{index}.png", "image/png", bytes.Length, bytes);
}
