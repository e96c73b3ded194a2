using System.Buffers.Binary;
using System.Security.Cryptography;

namespace WasteClassifier.Core.Training;

/// <summary>
/// Which images are held out from training: decided by the file's content hash, so the same photo lands on the
/// same side whatever its name, folder or the order it was added in. About one image in five is held out.
/// </summary>
public static class HoldOutSplit
{
    public const int Buckets = 5;

    public static bool IsHoldOut(ReadOnlySpan<byte> sha256) =>
        BinaryPrimitives.ReadUInt32BigEndian(sha256[..4]) % Buckets == 0;

    public static bool IsHoldOutContent(ReadOnlySpan<byte> fileBytes) => IsHoldOut(SHA256.HashData(fileBytes));

    /// <summary>An independent bucket (from other hash bytes) used to carve a validation set out of the training side.</summary>
    public static bool IsValidation(ReadOnlySpan<byte> sha256) =>
        BinaryPrimitives.ReadUInt32BigEndian(sha256[4..8]) % Buckets == 0;
}
