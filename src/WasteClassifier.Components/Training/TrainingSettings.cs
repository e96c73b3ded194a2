using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using WasteClassifier.Core.Training;

namespace WasteClassifier.Components.Training;

/// <summary>Configuration section <c>Training</c>.</summary>
public sealed class TrainingSettings
{
    public const string Section = "Training";

    /// <summary>
    /// Base datasets a job may name: name → folder holding manifest.csv (path,label). A relative folder is looked for from
    /// the working directory first (see <see cref="ResolvePath"/>).
    /// </summary>
    public Dictionary<string, string> Datasets { get; set; } = [];

    /// <summary>The dataset used when a job names none (<c>none</c> for labelled samples only).</summary>
    public string BaseDataset { get; set; } = "none";

    /// <summary>
    /// The trusted dataset whose hold-out (with the labelled samples' hold-out) scores every candidate against the
    /// active model, whatever data a job trains on; defaults to <see cref="BaseDataset"/>.
    /// </summary>
    public string? EvaluationDataset { get; set; }

    /// <summary>Promotion gate: the candidate's hold-out macro-F1 may be at most this much below the active model's.</summary>
    public double MaxMacroF1Drop { get; set; } = 0.01;

    /// <summary>Promotion gate: no class the active model recognised may lose more recall than this.</summary>
    public double MaxClassRecallDrop { get; set; } = 0.05;

    /// <summary>
    /// Promotion gate: a class with fewer hold-out images than this is left out of the macro-F1 comparison (its recall is
    /// still checked, by more than one image lost) and named beside it. Below 10 one image is more than a tenth of a class's recall and F1, so
    /// more than the macro-F1 margin over nine classes: chance, not evidence. Every class of waste-v1's hold-out has 29 or more.
    /// </summary>
    public int MinClassSupport { get; set; } = 10;

    /// <summary>How often a running job stores its progress and heartbeat and reads cancel requests.</summary>
    public int HeartbeatSeconds { get; set; } = 2;

    /// <summary>A running job whose heartbeat is older than this is considered dead (its trainer crashed).</summary>
    public int StaleAfterSeconds { get; set; } = 120;

    /// <summary>
    /// How often each trainer ends cancel requests no trainer will honour and, while no job runs, sends a job whose
    /// message was lost again (<see cref="TrainingJobSweeper"/>).
    /// </summary>
    public int SweepSeconds { get; set; } = 30;

    /// <summary>
    /// Claims of one job before a trainer that stops beating on it again fails it instead of having it taken over: a job
    /// that kills its trainer (out of memory, a crash) would otherwise be sent again for ever.
    /// </summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// This trainer's name on the jobs it runs: only the trainer that claimed a job stores its heartbeat, registers its
    /// candidate and writes its end. Defaults to host name + process id; it must differ between trainers sharing a database.
    /// </summary>
    public string TrainerId { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}".ToLowerInvariant();

    // The column that records it.
    private const int MaxTrainerIdLength = 128;

    /// <summary>Feature cache folder; defaults to {DataDirectory}/feature-cache.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>The <c>Training</c> section of <paramref name="configuration"/>, <see cref="Validated"/>.</summary>
    public static TrainingSettings From(IConfiguration configuration) =>
        (configuration.GetSection(Section).Get<TrainingSettings>() ?? new TrainingSettings()).Validated();

    /// <summary>
    /// Refuses heartbeat timings that would break the job table at start, naming the setting: a heartbeat that is not
    /// positive, or one so slow that a running job would look dead to the other trainers; a <see cref="MinClassSupport"/> or
    /// <see cref="MaxAttempts"/> below 1 (a job is claimed at least once); and a <see cref="TrainerId"/> its column cannot hold, which fails every claim.
    /// </summary>
    public TrainingSettings Validated()
    {
        if (HeartbeatSeconds < 1) throw new InvalidOperationException($"{Section}:{nameof(HeartbeatSeconds)} is {HeartbeatSeconds}; it must be 1 or more");
        if (StaleAfterSeconds <= HeartbeatSeconds)
            throw new InvalidOperationException(
                $"{Section}:{nameof(StaleAfterSeconds)} is {StaleAfterSeconds}; it must be more than {Section}:{nameof(HeartbeatSeconds)} ({HeartbeatSeconds})");
        if (SweepSeconds < 1) throw new InvalidOperationException($"{Section}:{nameof(SweepSeconds)} is {SweepSeconds}; it must be 1 or more");
        if (MinClassSupport < 1) throw new InvalidOperationException($"{Section}:{nameof(MinClassSupport)} is {MinClassSupport}; it must be 1 or more");
        if (MaxAttempts < 1) throw new InvalidOperationException($"{Section}:{nameof(MaxAttempts)} is {MaxAttempts}; it must be 1 or more");
        if (string.IsNullOrWhiteSpace(TrainerId) || TrainerId.Length > MaxTrainerIdLength)
            throw new InvalidOperationException($"{Section}:{nameof(TrainerId)} '{TrainerId}' must be 1 to {MaxTrainerIdLength} characters, not blank");
        return this;
    }

    public string? ResolveDataset(string name, ILogger? logger = null) =>
        name == "none" ? null
        : Datasets.TryGetValue(name, out var path) ? ResolvePath(name, path, Environment.CurrentDirectory, AppContext.BaseDirectory, logger)
        : throw new KeyNotFoundException($"dataset '{name}' is not configured on this trainer: set {Section}__{nameof(Datasets)}__{name} to its folder"
            + $" (configured: {(Datasets.Count == 0 ? "none" : string.Join(", ", Datasets.Keys))})");

    /// <summary>
    /// A dataset's folder. A relative one is looked for from the working directory, where <c>dotnet run</c> starts a
    /// service (its project folder); then from the app's own folder, and from the project folder it was built in (the
    /// nearest folder above the app holding a .csproj), where the shipped relative default is written from: a built
    /// service started from elsewhere (the repository root) found no dataset. The first folder holding manifest.csv wins
    /// (what the loader reads: an empty or unrelated folder of that name is passed over), logged when it is not the working
    /// directory's; when none does, the error names every path tried.
    /// </summary>
    internal static string ResolvePath(string name, string path, string workingDirectory, string appDirectory, ILogger? logger = null)
    {
        if (Path.IsPathRooted(path)) return Path.GetFullPath(path);
        List<string> bases = [workingDirectory, appDirectory];
        if (ProjectFolderAbove(appDirectory) is { } project) bases.Add(project);
        var tried = bases.Select(b => Path.GetFullPath(path, b)).Distinct().ToList();
        var found = tried.FirstOrDefault(folder => File.Exists(Path.Combine(folder, DatasetManifest.FileName))) ?? throw new DirectoryNotFoundException(
            $"dataset '{name}' folder {path} with {DatasetManifest.FileName} not found from the working directory, the app's folder or its project folder"
            + $" (tried {string.Join(", ", tried)}): set {Section}__{nameof(Datasets)}__{name} to its folder");
        if (found != tried[0])
            logger?.LogInformation("Dataset '{Name}' ({Path}) is not under the working directory {WorkingDirectory}; using {Folder}", name, path, workingDirectory, found);
        return found;
    }

    private static string? ProjectFolderAbove(string directory)
    {
        try
        {
            for (var folder = new DirectoryInfo(directory); folder is not null; folder = folder.Parent)
                if (folder.Exists && folder.EnumerateFiles("*.csproj").Any()) return folder.FullName;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder above the app this process may not list (a container's root): no project folder to try.
        }
        return null;
    }
}
