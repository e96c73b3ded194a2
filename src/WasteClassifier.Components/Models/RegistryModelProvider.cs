using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Components.Models;

/// <summary>
/// Serves the registry's active model. A new version is downloaded and fully loaded first, then swapped in:
/// a batch that already holds the old model finishes with it, the next batch gets the new one.
/// </summary>
public sealed class RegistryModelProvider(IServiceScopeFactory scopes, ModelOptions options, ServiceOptions service, TimeProvider clock,
    ILogger<RegistryModelProvider> logger)
    : IModelProvider, IDisposable
{
    /// <summary>
    /// After a version failed to load, how long until it is downloaded and loaded again (unless promoted again since), doubling
    /// with each failure up to <see cref="MaxLoadBackOff"/>. A worker without a model tried on every batch: seconds of CPU
    /// and I/O each time for a corrupt model of 10+ MB, taken from healthy workers on the same node. 5 s lets a passing
    /// fault (a store blip) cost one batch's send-back; the 1-minute cap bounds a broken version to one try a minute and
    /// the wait of a fixed one (its files uploaded again) to a minute.
    /// </summary>
    public static readonly TimeSpan FirstLoadBackOff = TimeSpan.FromSeconds(5);

    /// <summary>The longest wait between tries of a version that keeps failing to load (<see cref="FirstLoadBackOff"/>).</summary>
    public static readonly TimeSpan MaxLoadBackOff = TimeSpan.FromMinutes(1);

    private readonly SemaphoreSlim _switching = new(1, 1);
    private SharedModel? _model;
    private volatile ModelLoadFailure? _loadFailure;
    // Tries of _loadFailure's version that failed in a row, when the last one failed (a monotonic timestamp: a wall clock
    // stepped back, by NTP after boot say, would stretch the wait) and how long until it may be tried again; under _switching.
    private int _failedLoads;
    private long _failedLoadAt;
    private TimeSpan _loadBackOff;
    // The registry's PromotedAt of _loadFailure's version when it failed: another one is a promotion since (perhaps of
    // fixed files), seen in the registry whether or not this worker got the ModelPromoted event; compared for equality, as
    // an API whose clock is behind stamps an earlier one; under _switching.
    private DateTime? _failedPromotedAt;
    private int _disposed;

    public ModelCard? LoadedCard => _model?.Classifier.Card;

    private string CacheRoot => Path.Combine(service.ResolvedDataDirectory, "model-cache");

    /// <summary>
    /// The registry's active version that the last refresh failed to download or load, and why; null once the provider
    /// serves the registry's active version. Meanwhile it keeps serving what it had (the health check says so).
    /// </summary>
    public ModelLoadFailure? LoadFailure => _loadFailure;

    /// <summary>
    /// How long until the version of <see cref="LoadFailure"/> may be downloaded and loaded again (zero: due now); null
    /// without a failure. Read outside the lock: a value a failure is recording at the moment is off by one back-off.
    /// </summary>
    public TimeSpan? LoadRetryIn => _loadFailure is null ? null : TimeSpan.FromTicks(Math.Max(0, (_loadBackOff - clock.GetElapsedTime(_failedLoadAt)).Ticks));

    public async Task<ModelLease> AcquireAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(_disposed == 1, this);
            var model = _model;
            if (model is null)
            {
                await RefreshAsync(cancellationToken);
                continue;
            }
            if (model.TryAcquire()) return new ModelLease(model);
            // Released by a swap between our read and acquire: read the new one.
        }
    }

    /// <summary>
    /// Loads the registry's active version if it is not the one in use; returns true when it swapped. A version that failed
    /// to load is not tried again until its back-off has passed (<see cref="FirstLoadBackOff"/>): meanwhile this throws its
    /// recorded failure at once. Another active version, or the failed one promoted again since (the registry's PromotedAt
    /// changed: an operator may have fixed its files), is tried at once.
    /// </summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        await _switching.WaitAsync(cancellationToken);
        try
        {
            using var scope = scopes.CreateScope();
            var registry = scope.ServiceProvider.GetRequiredService<ModelRegistry>();
            var active = await registry.GetActiveAsync(cancellationToken)
                ?? throw new InvalidOperationException("the model registry has no active model");
            if (_model?.Classifier.Card.Version == active.Version)
            {
                // Serving the active version (an operator rolled back to it, say): a failure to load another is over.
                _loadFailure = null;
                _failedLoads = 0;
                return false;
            }
            // One registry read per batch while this worker has no model, none of the download and load: a promotion, even
            // of the failed version again (its PromotedAt changed), is still tried at the next batch, with the event or without.
            // The event's refresh after a batch failed on the same promotion is answered with the failure too.
            var failedBefore = _loadFailure is { } failed && failed.Version == active.Version && active.PromotedAt == _failedPromotedAt;
            if (failedBefore && clock.GetElapsedTime(_failedLoadAt) < _loadBackOff)
                throw new ModelLoadBackOffException(_loadFailure!.Reason);

            var started = System.Diagnostics.Stopwatch.StartNew();
            IImageClassifier classifier;
            string? directory = null;
            try
            {
                directory = await registry.DownloadAsync(active, CacheRoot, cancellationToken);
                classifier = await Task.Run(() => ModelLoader.Load(directory, options.ToInferenceOptions()), cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // Downloaded but not loadable (a corrupt artifact): DownloadAsync serves a complete cached copy as it is, so
                // every later try, even of files uploaded again and promoted, would load the same bad bytes.
                if (directory is not null && MayBeTheCachedFiles(e, directory)) registry.RemoveCached(CacheRoot, active.Version);
                _failedLoads = failedBefore ? _failedLoads + 1 : 1;
                var backOff = TimeSpan.FromTicks(Math.Min(MaxLoadBackOff.Ticks, FirstLoadBackOff.Ticks << Math.Min(_failedLoads - 1, 16)));
                (_failedLoadAt, _loadBackOff, _failedPromotedAt) = (clock.GetTimestamp(), backOff, active.PromotedAt);
                _loadFailure = new ModelLoadFailure(active.Version, e.Message);
                logger.LogWarning("Model {ModelVersion} could not be loaded ({Failures} time(s) in a row); not tried again for {BackOffSeconds} s unless promoted again",
                    active.Version, _failedLoads, backOff.TotalSeconds);
                throw;
            }
            _loadFailure = null;
            _failedLoads = 0;
            var previous = _model;
            if (previous is null) LogPageSize();
            _model = new SharedModel(classifier);
            previous?.Release();
            if (previous is not null) registry.PruneCache(CacheRoot, [active.Version, previous.Classifier.Card.Version]);
            Observability.ClassifierMetrics.ServingModel(active.Version);
            logger.LogInformation("Now serving model {ModelVersion} (was {PreviousVersion}); loaded in {ElapsedMs} ms",
                active.Version, previous?.Classifier.Card.Version, started.ElapsedMilliseconds);
            return true;
        }
        finally
        {
            _switching.Release();
        }
    }

    /// <summary>
    /// Whether a load failure may come from the cached copy in <paramref name="directory"/>. A file missing elsewhere (a
    /// backbone under Model:BackbonesDirectory) or memory running out says nothing of it: deleted, each retry downloaded the
    /// whole artifact again. Any other error may (a corrupt artifact: a protobuf or ONNX Runtime error), so it is deleted.
    /// </summary>
    internal static bool MayBeTheCachedFiles(Exception e, string directory) => e switch
    {
        OutOfMemoryException => false,
        FileNotFoundException { FileName: { } file } => Path.GetFullPath(file).StartsWith(Path.GetFullPath(directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal),
        _ => true,
    };

    /// <summary>Says once, at the first load, whether the model's per-Run buffers get huge pages and gen 0 is capped (deployment settings).</summary>
    private void LogPageSize()
    {
        // The build caps gen 0 in runtimeconfig.json; an override (or a runtimeconfig without it) lets it grow with the CPU's cache.
        if (ManagedHeap.Gen0MaxBudgetBytes() is var gen0 and > ManagedHeap.Gen0MaxBudgetCapBytes)
            logger.LogInformation("Generation 0 may grow to {Gen0MiB} MiB between collections (DOTNET_GCGen0MaxBudget, or a runtimeconfig.json " +
                "without the build's 16 MiB cap): up to that much more garbage held in this process", gen0 / (1024 * 1024));
        if (!OperatingSystem.IsLinux()) return;
        var mode = NativeHeap.TransparentHugePagesMode();
        if (!NativeHeap.HugePagesRequested(Environment.GetEnvironmentVariable("GLIBC_TUNABLES")))
            logger.LogInformation("Model buffers use 4 KB pages: GLIBC_TUNABLES={Tunable} (set in the Dockerfiles) saves about 5 % of the CPU per image", NativeHeap.HugePagesTunable);
        else if (mode == "never")
            logger.LogInformation("GLIBC_TUNABLES asks for huge pages, but this host's transparent huge pages are off (never)");
        else
            logger.LogInformation("Model buffers use transparent huge pages (host mode {TransparentHugePages})", mode ?? "unknown");
    }

    /// <summary>Serves <paramref name="model"/> without a registry (unit tests).</summary>
    internal void UseForTests(SharedModel model) => _model = model;

    /// <summary>
    /// Drops the provider's reference once (the container disposes it under both of its registrations);
    /// a batch still running keeps the model alive until it finishes.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _model?.Release();
    }
}

/// <summary>A model version the provider could not download or load, and why.</summary>
public sealed record ModelLoadFailure(string Version, string Reason);

/// <summary>The recorded failure of a version whose back-off has not passed: nothing was tried this time.</summary>
public sealed class ModelLoadBackOffException(string reason) : InvalidOperationException(reason);
