using System.Security.Cryptography;
using System.Text;

namespace WasteClassifier.Core.Training;

/// <summary>
/// What a model was trained on, in one value: SHA-256 over its training images' (content hash, label) pairs, sorted, so
/// the same images with the same labels give the same fingerprint whatever their order, names or base dataset. Recorded in
/// a trained model's card (<c>training.data_fingerprint</c>); the promotion gate compares it to tell a retrain on the same
/// data from one on new data, which the images per label cannot (a relabelled or replaced image keeps the counts).
/// </summary>
public static class TrainingDataFingerprint
{
    public const string Prefix = "sha256:";

    public static string Of(IEnumerable<(byte[] Sha256, string Label)> images)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var line in images.Select(i => $"{Convert.ToHexStringLower(i.Sha256)}\t{i.Label}\n").Order(StringComparer.Ordinal))
            hash.AppendData(Encoding.UTF8.GetBytes(line));
        return Prefix + Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
