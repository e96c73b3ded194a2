using System.Security.Cryptography;

namespace WasteClassifier.Core.Training;

/// <summary>An image's bytes with its label index; <see cref="Path"/> names it in logs (a file path or an object key).</summary>
public sealed record LabelledImage(string Path, int Label, byte[] Sha256, byte[] Bytes)
{
    public static LabelledImage From(string name, int label, byte[] bytes) => new(name, label, SHA256.HashData(bytes), bytes);
}
