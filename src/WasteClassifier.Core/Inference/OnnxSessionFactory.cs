using Microsoft.ML.OnnxRuntime;

namespace WasteClassifier.Core.Inference;

internal static class OnnxSessionFactory
{
    public static InferenceSession Create(byte[] model, InferenceOptions options)
    {
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = Math.Max(1, options.IntraOpThreads),
            // One graph, one batch at a time: parallelism is inside operators, not between them.
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        return new InferenceSession(model, sessionOptions);
    }
}
