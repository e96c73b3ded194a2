using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.Bench;

/// <summary>Runs load phases against a deployment through its HTTP API, writing each phase's report.</summary>
public sealed class EndToEndBench(BenchSettings settings, ImageSet images)
{
    /// <param name="MachineCpu">Share of all cores each process group used over the whole phase, drain included.</param>
    /// <param name="WorkerModel">The model calls' own time in the workers over the phase; null where they do not count it.</param>
    public sealed record Phase(string Name, LoadReport Report, double ApiCpuShare, double WorkerCpuShare, IReadOnlyDictionary<string, double> MachineCpu, double MeanBatchSize,
        WorkerModelTime? WorkerModel)
    {
        /// <summary>
        /// CPU milliseconds a group spent per image at the phase's steady throughput (the figure the ratios use): on cores
        /// that stay busy to the end, as at saturation, the group's share of the phase over that throughput.
        /// </summary>
        public double CpuMsPerImage(string group) =>
            MachineCpu.GetValueOrDefault(group) * Environment.ProcessorCount * 1000 / (Report.Throughput.SteadyCompletedPerS ?? double.NaN);
    }

    public async Task<Phase> RunAsync(Deployment deployment, string name, int users, double rate, TimeSpan duration, TimeSpan drain, string? profile = null)
    {
        var options = new LoadTestOptions
        {
            Target = deployment.Url,
            Users = users,
            Rate = rate,
            Duration = duration,
            Ramp = rate > 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(3, duration.TotalSeconds / 5)),
            Drain = drain,
            Profile = profile,
            Source = $"bench-{name}",
        };
        var apiCpu = deployment.Api.CpuSeconds();
        var workerCpu = deployment.Workers.Sum(w => w.CpuSeconds());
        var machine = CpuUsage.Take(deployment);
        var metricsUrls = deployment.Workers.Select(w => w.MetricsUrl).OfType<Uri>().ToList();
        var model = await WorkerModelTime.ScrapeAsync(metricsUrls);
        var started = DateTime.UtcNow;
        await using var target = new HttpLoadTarget(WasteClassifier.LoadTesting.Http.WastectlHttp.CreateClient(deployment.Url, options.RequestTimeout), options.Source, options.LongPoll);
        var result = await new LoadRunner(target, images, options, message => Console.Error.WriteLine($"  [{name}] {message}")).RunAsync();
        var wall = (DateTime.UtcNow - started).TotalSeconds;
        var machineShares = CpuUsage.Take(deployment).SharesSince(machine);
        var modelSince = model is not null && await WorkerModelTime.ScrapeAsync(metricsUrls) is { } modelAfter ? modelAfter.Since(model) : null;
        var report = LoadReport.From(result);
        ReportFiles.Write(report, Path.Combine(settings.OutputDirectory, name));
        return new Phase(name, report, (deployment.Api.CpuSeconds() - apiCpu) / wall, (deployment.Workers.Sum(w => w.CpuSeconds()) - workerCpu) / wall, machineShares,
            // The batch each image was classified in, as the worker recorded it.
            result.Records.Select(r => r.Server?.BatchSize).OfType<int>().DefaultIfEmpty(0).Average(), modelSince);
    }
}
