namespace WasteClassifier.Api;

/// <summary>Names this assembly's entry point for WebApplicationFactory (both hosts' top-level Program types are public).</summary>
public sealed class ApiEntryPoint;
