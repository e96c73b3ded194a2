namespace WasteClassifier.Components.Classifying;

/// <summary>
/// This worker cannot classify for now, whatever the images: it has no model loaded, or its read access to the object
/// store is in doubt. Never the images' fault, so never a failed row: the batch's rows are left queued (its claim taken
/// back) and <see cref="ClassifyImageBatchConsumer"/> sends their messages back to the queue, for a worker that can.
/// </summary>
public sealed class WorkerFaultException(string message, Exception? inner = null) : Exception(message, inner);
