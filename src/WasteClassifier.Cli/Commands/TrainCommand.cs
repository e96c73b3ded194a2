using System.Globalization;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;

namespace WasteClassifier.Cli.Commands;

public sealed class TrainCommand : ICommand
{
    public string Name => "train";

    public string Summary => "train a classifier head on backbone features; writes card.json and head.onnx";

    public string Usage => """
        wastectl train --data DIR --out DIR [options]

          --data DIR             folder with manifest.csv (columns path,label; paths relative to DIR)
          --out DIR              model folder to write (card.json, head.onnx)
          --holdout-only-eval    do not train: re-score the model already in --out on the hold-out and update its card
          --validate             tuning run: train without a validation bucket, print its score, write nothing
          --version NAME         card version (default: resnet18-<head>-<yyyyMMddHHmmss>, UTC)
          --backbone ID          resnet18-imagenet-multiscale (default) or resnet18-imagenet
          --head mlp|softmax     head type (default mlp)
          --augment none|flip|crops   training views per image (default flip)
          --epochs N  --hidden N  --batch N  --lr X  --weight-decay X
          --dropout X  --input-dropout X  --label-smoothing X  --seed N
          --no-l2                skip L2 normalisation of features
          --no-class-weights     plain (unweighted) cross-entropy
          --cache DIR            feature cache (default: $WASTECTL_FEATURE_CACHE or the user's local app data)
          --threads N            ONNX Runtime intra-op threads (default: all cores)
        """;

    private static readonly string[] Values =
        ["--data", "--out", "--version", "--backbone", "--head", "--augment", "--epochs", "--hidden", "--batch", "--lr", "--weight-decay",
         "--dropout", "--input-dropout", "--label-smoothing", "--seed", "--cache", "--threads"];

    private static readonly string[] Flags = ["--holdout-only-eval", "--validate", "--no-l2", "--no-class-weights"];

    public IReadOnlySet<string> ValueOptions { get; } = Values.ToHashSet();

    public IReadOnlySet<string> FlagOptions { get; } = Flags.ToHashSet();

    public int Run(CommandArguments arguments)
    {
        var data = CommandArguments.ExistingDirectory(arguments.Required("--data"), "data folder");
        var validate = arguments.Flag("--validate");
        var output = validate ? arguments.Optional("--out") : Path.GetFullPath(arguments.Required("--out"));
        var inference = new InferenceOptions { IntraOpThreads = arguments.Int("--threads", Environment.ProcessorCount) };
        if (!File.Exists(Path.Combine(data, DatasetManifest.FileName))) throw new UsageException($"no {DatasetManifest.FileName} in {data}");
        // Checked before training: every process registers the bundled card at start and refuses one the registry cannot store.
        if (arguments.Optional("--version") is { } given && !ModelRegistry.IsValidVersion(given))
            throw new UsageException($"version '{given}' must be 1–128 letters, digits, '.', '_' or '-'");

        if (arguments.Flag("--holdout-only-eval"))
        {
            var model = CommandArguments.ExistingDirectory(output!, "model folder");
            return RescoreHoldOut(model, data, inference);
        }

        var request = new HeadTrainingRequest
        {
            DatasetDirectory = data,
            CacheDirectory = arguments.Optional("--cache") ?? DefaultCacheDirectory,
            Head = HeadOptions(arguments),
            Backbone = BackboneDefinition.Find(arguments.Optional("--backbone") ?? BackboneDefinition.ResNet18MultiScale.Id),
            Augmentation = arguments.Choice("--augment", "flip", "none", "flip", "crops"),
            Validate = validate,
            Inference = inference,
        };
        var result = HeadTrainingPipeline.Run(request, Log.Info);
        foreach (var (label, _) in result.TrainingCounts.Where(c => c.Value == 0))
            Log.Info($"warning: no training images of '{label}': the model never predicts it");
        // The mirror average is a what-if (image and mirror averaged at test time); the served graph does not do it.
        Log.Info($"{result.EvaluationSplit}: accuracy {result.Evaluation.Accuracy:P2}, macro-F1 {result.Evaluation.MacroF1:F4} over " +
                 $"{result.Evaluation.Count} image(s) (macro-F1 averages the classes with images there); not served, with mirror average: " +
                 $"{result.EvaluationWithMirrorAverage?.Accuracy:P2}, {result.EvaluationWithMirrorAverage?.MacroF1:F4}");
        if (validate)
        {
            Console.Out.WriteLine(result.Evaluation.ToJson());
            return EmptyEvaluation(result) ? 1 : 0;
        }

        var version = arguments.Optional("--version") ?? DefaultVersion(request.Head.HeadType, DateTime.UtcNow);
        TrainedModelWriter.Write(output!, version, request, result);
        Log.Info($"wrote {output}; checking it end to end");
        var code = RescoreHoldOut(output!, data, inference);
        return EmptyEvaluation(result) ? 1 : code;
    }

    /// <summary>
    /// No image to score on: the model is written but its 0 % says nothing, and a script chaining train and serve should stop.
    /// </summary>
    private static bool EmptyEvaluation(HeadTrainingResult result)
    {
        if (result.Evaluation.Count > 0) return false;
        Log.Info($"error: the {result.EvaluationSplit} is empty (no image of the data falls in it: about 1 in 5 does), so the model was not scored; " +
                 "train on more images");
        return true;
    }

    /// <summary>
    /// To the second: the registry skips a version it already has, so a second run the same day into the same folder
    /// must not reuse the first one's name for different weights.
    /// </summary>
    internal static string DefaultVersion(string headType, DateTime utcNow) =>
        $"resnet18-{headType}-{utcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture)}";

    /// <summary>Scores the written model from image files through the composed graph and records that in its card.</summary>
    private static int RescoreHoldOut(string modelDirectory, string data, InferenceOptions inference)
    {
        var report = ModelEvaluation.Run(modelDirectory, data, "holdout", inference);
        var card = ModelCard.Load(modelDirectory) with { Metrics = TrainedModelWriter.Metrics(report, "holdout", "end to end from image files") };
        TrainedModelWriter.SaveCard(modelDirectory, card);
        Console.Out.WriteLine(report.ToJson());
        return 0;
    }

    private static HeadTrainingOptions HeadOptions(CommandArguments a)
    {
        var defaults = new HeadTrainingOptions();
        return new HeadTrainingOptions
        {
            HeadType = a.Choice("--head", defaults.HeadType, "mlp", "softmax"),
            HiddenUnits = a.Int("--hidden", defaults.HiddenUnits),
            Epochs = a.Int("--epochs", defaults.Epochs),
            BatchSize = a.Int("--batch", defaults.BatchSize),
            LearningRate = a.Float("--lr", defaults.LearningRate, 1e-6f, 1f),
            WeightDecay = a.Float("--weight-decay", defaults.WeightDecay, 0, 1),
            HiddenDropout = a.Float("--dropout", defaults.HiddenDropout, 0, 0.95f),
            InputDropout = a.Float("--input-dropout", defaults.InputDropout, 0, 0.95f),
            LabelSmoothing = a.Float("--label-smoothing", defaults.LabelSmoothing, 0, 0.5f),
            Seed = a.Int("--seed", defaults.Seed, 0),
            L2Normalise = !a.Flag("--no-l2"),
            ClassWeighted = !a.Flag("--no-class-weights"),
        };
    }

    private static string DefaultCacheDirectory =>
        Environment.GetEnvironmentVariable("WASTECTL_FEATURE_CACHE")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "wasteclassifier", "features");
}
