using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>
/// Training jobs travel on <c>Messaging:TrainQueue</c> (<c>train-model</c> unless set): the trainers consume it, and the API
/// and the trainers send to it, so two deployments on one broker keep their jobs apart.
/// </summary>
public sealed class TrainQueueTests : IDisposable
{
    private static readonly MessagingOptions Messaging = new() { TrainQueue = "train-model-blue" };
    private readonly InMemoryDatabase _database = new();

    [Fact]
    public void Default_IsTrainModel()
    {
        Assert.Equal(QueueNames.TrainModel, new MessagingOptions().TrainQueue);
        Assert.Equal("train-model", QueueNames.TrainModel);
    }

    [Theory]
    [InlineData("classify-image", "classify-image")]
    [InlineData("classify-image", "classify-image-faults")]
    [InlineData("classify-image", "classify-image_error")]
    [InlineData("train-model_skipped", "train-model")]
    [InlineData("classify-image", " ")]
    [InlineData("", "train-model")]
    public void Validated_QueueNamesThatWouldCollideOrAreBlank_ThrowNamingTheSetting(string classifyQueue, string trainQueue)
    {
        var options = new MessagingOptions { ClassifyQueue = classifyQueue, TrainQueue = trainQueue };

        var error = Assert.Throws<InvalidOperationException>(() => options.Validated());

        Assert.Contains(classifyQueue == "" ? "Messaging:ClassifyQueue" : "Messaging:TrainQueue", error.Message);
    }

    [Fact]
    public void Validated_DefaultsAndATestDeploymentsNames_Pass()
    {
        new MessagingOptions().Validated();
        new MessagingOptions { ClassifyQueue = "classify-image-0123456789", TrainQueue = "train-model-0123456789" }.Validated();
    }

    [Fact]
    public void Consumer_ReadsTheConfiguredQueue()
    {
        IConsumerDefinition definition = new TrainModelConsumerDefinition(Messaging);

        Assert.Equal("train-model-blue", definition.GetEndpointName(KebabCaseEndpointNameFormatter.Instance));
    }

    [Fact]
    public async Task Submit_SendsTheJobToTheConfiguredQueue()
    {
        await using var provider = new ServiceCollection().AddPatientTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var store = new MemoryObjectStore();
        var registry = new ModelRegistry(_database.Context, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
        var submitter = new TrainingJobSubmitter(_database.Context,
            new ImageIntake(_database.Context, store, new UploadOptions(), new SeenContentHashes(), TimeProvider.System), registry,
            harness.Bus, Messaging, new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);

        var (result, error) = await submitter.SubmitAsync([], [], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        var sent = Assert.Single(harness.Sent.Select<TrainModel>());
        Assert.Equal(result!.Job.Id, sent.Context.Message.TrainingJobId);
        Assert.EndsWith("/train-model-blue", sent.Context.DestinationAddress!.AbsolutePath);
    }

    [Fact]
    public async Task SendNext_SendsTheDueJobToTheConfiguredQueue()
    {
        var job = new TrainingJob { Id = Guid.NewGuid(), OptionsJson = "{}", CreatedAt = DateTime.UtcNow };
        _database.Context.TrainingJobs.Add(job);
        await _database.Context.SaveChangesAsync();
        await using var provider = new ServiceCollection().AddScoped(_ => _database.NewContext()).AddPatientTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var sweeper = new TrainingJobSweeper(provider.GetRequiredService<IServiceScopeFactory>(), new TrainingSettings(), Messaging, TimeProvider.System,
            NullLogger<TrainingJobSweeper>.Instance);

        Assert.Equal(job.Id, await sweeper.SendNextAsync(CancellationToken.None));

        var sent = Assert.Single(harness.Sent.Select<TrainModel>());
        Assert.Equal(job.Id, sent.Context.Message.TrainingJobId);
        Assert.EndsWith("/train-model-blue", sent.Context.DestinationAddress!.AbsolutePath);
    }

    public void Dispose() => _database.Dispose();
}
