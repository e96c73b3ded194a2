using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace WasteClassifier.Components.Observability;

/// <summary>Configuration section <c>Health</c>: how long the readiness checks of the database and the object store may take.</summary>
public sealed class HealthOptions
{
    public const string Section = "Health";

    /// <summary>
    /// Seconds one check of the database or the object store may take before it reports its component unhealthy ("did not
    /// answer within N s"). Below the probes' timeouts (5 s in the Kubernetes manifests and the Compose file), so a component
    /// that accepts connections and never answers fails its own check instead of the whole probe.
    /// </summary>
    public double CheckTimeoutSeconds { get; set; } = 3;

    public const double MaxCheckTimeoutSeconds = 60;

    public TimeSpan CheckTimeout => TimeSpan.FromSeconds(CheckTimeoutSeconds);

    /// <summary>The limit as a description writes it: "3", "1.5".</summary>
    public string CheckTimeoutText => CheckTimeoutSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    public static HealthOptions From(IConfiguration configuration) =>
        (configuration.GetSection(Section).Get<HealthOptions>() ?? new HealthOptions()).Validated();

    /// <summary>Refuses a value out of range at start, naming the setting.</summary>
    public HealthOptions Validated()
    {
        if (!(CheckTimeoutSeconds is > 0 and <= MaxCheckTimeoutSeconds))
            throw new InvalidOperationException($"{Section}:{nameof(CheckTimeoutSeconds)} is {CheckTimeoutSeconds.ToString(CultureInfo.InvariantCulture)}; it must be above 0 and at most {MaxCheckTimeoutSeconds}");
        return this;
    }
}
