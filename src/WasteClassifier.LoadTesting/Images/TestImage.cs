namespace WasteClassifier.LoadTesting.Images;

/// <summary>One image the load tester sends, held in memory so disk reads never pace the test.</summary>
public sealed record TestImage(string FileName, byte[] Content, string ContentType);
