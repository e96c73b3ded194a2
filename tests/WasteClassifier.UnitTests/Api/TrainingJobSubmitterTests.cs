using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
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
        var store = new MemoryObjectStore();
        var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
        var submitter = new TrainingJobSubmitter(db, new ImageIntake(db, store, new UploadOptions(), new SeenContentHashes(), TimeProvider.System), registry,
            new RefusingSendEndpoints(), new MessagingOptions(), new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);

        var (result, error) = await submitter.SubmitAsync([], [], new TrainingJobOptions(), CancellationToken.None);

        // The job is recorded before the send, so it is accepted: a trainer's sweeper sends it once the broker is back.
        Assert.Null(error);
        var job = await db.TrainingJobs.AsNoTracking().SingleAsync();
        Assert.Equal(result!.Job.Id, job.Id);
        Assert.Equal(TrainingJobStatus.Queued, job.Status);
    }
}
