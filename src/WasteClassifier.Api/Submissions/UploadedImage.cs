namespace WasteClassifier.Api.Submissions;

/// <summary>One file from a multipart request; <see cref="Content"/> is read only when <see cref="Length"/> is within the limit.</summary>
public sealed record UploadedImage(int Index, string? FileName, string? ContentType, long Length, byte[] Content);

/// <summary>A file the API refused, and why; nothing was stored or queued for it.</summary>
public sealed record RejectedImage(int Index, string? Filename, string Error, string Message);

/// <summary>An accepted file; <see cref="Index"/> is its position among the request's files, as a refusal's is.</summary>
public sealed record AcceptedImage(Guid Id, string Status, string Url, string? Filename, int Index);

/// <param name="KeyReused">The Idempotency-Key belongs to another request (other source or files): nothing was done.</param>
public sealed record SubmissionResult(IReadOnlyList<AcceptedImage> Items, IReadOnlyList<RejectedImage> Rejected, bool Replayed, bool KeyReused = false);
