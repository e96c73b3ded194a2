using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Training;

/// <summary>
/// An embedded service (worker and trainer in process) whose training jobs use small base datasets, so a job takes
/// seconds. The gate's margins are relaxed: a head trained on 20 images per class is compared with the default model
/// trained on the whole dataset (a model trained on shuffled labels still falls far outside them). Its hold-out has 1 to 5
/// images per class, fewer than Training:MinClassSupport's default: the gate judges every class here, as these tests are
/// about what it decides, not about its support rule (DistributedRetrainingTests runs a job under the default).
/// </summary>
public class TrainingFixture() : EmbeddedFixture("")
{
    public static readonly string FeatureCache = Path.Combine(Path.GetTempPath(), "wasteclassifier-tests", "feature-cache");

    protected override IReadOnlyDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Training:Datasets:small"] = SmallDatasets.Write(perClass: 20),
        ["Training:Datasets:shuffled"] = SmallDatasets.Write(perClass: 20, shuffleLabels: true),
        ["Training:BaseDataset"] = "small",
        ["Training:MaxClassRecallDrop"] = "0.5",
        ["Training:MaxMacroF1Drop"] = "0.2",
        ["Training:MinClassSupport"] = "1",
        ["Training:CacheDirectory"] = FeatureCache,
        ["Model:RefreshSeconds"] = "2",
        ["Worker:Id"] = "training-worker",
    };
}

/// <summary>
/// As <see cref="TrainingFixture"/>, with a heartbeat too slow to see a cancel request while a job runs: what a trainer
/// too busy to run its heartbeat looks like.
/// </summary>
public sealed class SlowHeartbeatTrainingFixture : TrainingFixture
{
    protected override IReadOnlyDictionary<string, string?> Settings => new Dictionary<string, string?>(base.Settings)
    {
        ["Training:HeartbeatSeconds"] = "3600",
        ["Training:StaleAfterSeconds"] = "7200",
    };
}

/// <summary>
/// As <see cref="TrainingFixture"/>, with the trainer's sweeper never coming round by itself: the tests run its passes, so
/// they know which one did what. Its trainer is <see cref="TrainerId"/>; another process's trainer needs an id of its own.
/// </summary>
public sealed class ManualSweepTrainingFixture : TrainingFixture
{
    public const string TrainerId = "trainer-a";

    protected override IReadOnlyDictionary<string, string?> Settings => new Dictionary<string, string?>(base.Settings)
    {
        ["Training:SweepSeconds"] = "86400",
        ["Training:TrainerId"] = TrainerId,
    };
}
