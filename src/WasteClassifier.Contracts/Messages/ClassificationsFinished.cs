namespace WasteClassifier.Contracts.Messages;

/// <summary>
/// Event: a worker committed the results of these classifications (completed or failed). Every API process hears it and
/// answers the requests waiting for them (long polling, <c>/predict</c>) at once. A hint, not the record: the database
/// is the truth, and the API still checks it for events that never arrive.
/// </summary>
public record ClassificationsFinished
{
    public required IReadOnlyList<Guid> ClassificationIds { get; init; }
    public required DateTimeOffset FinishedAt { get; init; }
}
