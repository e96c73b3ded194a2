using WasteClassifier.Core.Inference;

namespace WasteClassifier.Cli.Commands;

public sealed class EvaluateCommand : ICommand
{
    public string Name => "evaluate";

    public string Summary => "score a model on a labelled data set; prints a JSON report";

    public string Usage => """
        wastectl evaluate --data DIR [--model DIR] [--out FILE] [--split holdout|all] [--threads N]

          --data DIR     folder with manifest.csv (columns path,label; paths relative to DIR)
          --model DIR    model folder with card.json (default: the bundled models/default)
          --out FILE     also write the report to FILE
          --split        holdout (default: the images training never sees) or all
          --threads N    ONNX Runtime intra-op threads (default: all cores)
        """;

    public IReadOnlySet<string> ValueOptions { get; } = new HashSet<string> { "--data", "--model", "--out", "--split", "--threads" };

    public IReadOnlySet<string> FlagOptions { get; } = new HashSet<string>();

    public int Run(CommandArguments arguments)
    {
        var data = CommandArguments.ExistingDirectory(arguments.Required("--data"), "data folder");
        var model = CommandArguments.ExistingDirectory(arguments.Optional("--model") ?? DefaultModelDirectory, "model folder");
        var split = arguments.Choice("--split", "holdout", "holdout", "all");
        var options = new InferenceOptions { IntraOpThreads = arguments.Int("--threads", Environment.ProcessorCount) };

        var json = ModelEvaluation.Run(model, data, split, options).ToJson();
        Console.Out.WriteLine(json);
        if (arguments.Optional("--out") is { } outFile) File.WriteAllText(outFile, json + Environment.NewLine);
        return 0;
    }

    public static string DefaultModelDirectory => Path.Combine(AppContext.BaseDirectory, "models", "default");
}
