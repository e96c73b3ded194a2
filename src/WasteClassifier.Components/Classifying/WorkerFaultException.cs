namespace WasteClassifier.Components.Classifying;

/// <summary>
/// This worker cannot classify for now, whatever the images: it has no model loaded, or its read access to the object
/// store is in doubt. Never the images' fault, so never a failed row: the batch's rows are left queued (its claim taken
/// back) and <see cref="ClassifyImageBatchConsumer"/> sends their messages back to the queue, for a worker that can.
/// </summary>
public sealed class WorkerFaultException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>
    /// What each row's own store read answered (403, or not found), by classification id: the error a row fails with once
    /// its message has been sent back too often (<see cref="ClassifyImageBatchConsumer.MaxSendBacks"/>). Empty when the
    /// fault is not about store reads (no model).
    /// </summary>
    public IReadOnlyDictionary<Guid, RowError> RowErrors { get; init; } = new Dictionary<Guid, RowError>();

    /// <summary>
    /// Ids of the batch whose rows are final already (or gone): their messages are acknowledged, not sent back, where a
    /// copy went round up to the send-back limit for nothing.
    /// </summary>
    public IReadOnlySet<Guid> Settled { get; internal set; } = new HashSet<Guid>();

    /// <summary>
    /// Ids of the batch's rows that it saved as final before the fault (an earlier pass's results, rows the claim failed
    /// for too many attempts): announced as a batch that succeeds announces its rows, where long-polling clients waited
    /// for the API's own check of the database.
    /// </summary>
    public IReadOnlyList<Guid> Finished { get; internal set; } = [];
}

/// <summary>An error code and its words, as a failed row holds them.</summary>
public sealed record RowError(string Code, string Message);
