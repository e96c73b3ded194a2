namespace WasteClassifier.Contracts.Messages;

/// <summary>Event: a model version became the active one. Every worker loads it and swaps it in between batches.</summary>
public record ModelPromoted
{
    public required string Version { get; init; }
    public string? PreviousVersion { get; init; }
    public required DateTimeOffset PromotedAt { get; init; }
}
