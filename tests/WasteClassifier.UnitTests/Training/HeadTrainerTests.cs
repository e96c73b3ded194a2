using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using WasteClassifier.Core.Evaluation;
using WasteClassifier.Core.Training;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Training;

public class HeadTrainerTests
{
    private static readonly HeadTrainingOptions Quick = new() { Epochs = 30, HiddenUnits = 16, BatchSize = 8, LearningRate = 0.01f, InputDropout = 0, HiddenDropout = 0.1f };

    [Theory]
    [InlineData("mlp")]
    [InlineData("softmax")]
    public void Train_SeparableClusters_ClassifiesTrainingData(string headType)
    {
        var samples = TinyHeads.Clusters(width: 32, labelsWithData: [0, 1, 2], perLabel: 12);

        var head = HeadTrainer.Train(samples, labelCount: 4, Quick with { HeadType = headType });

        Assert.All(samples, s => Assert.Equal(s.Label, ClassificationMetrics.ArgMax(head.Predict(s.Features))));
    }

    [Fact]
    public void Train_LabelWithoutData_NeverPredicted()
    {
        var samples = TinyHeads.Clusters(width: 32, labelsWithData: [0, 1, 3], perLabel: 12);

        var head = HeadTrainer.Train(samples, labelCount: 4, Quick);

        Assert.Equal(4, head.Outputs);
        Assert.All(samples, s => Assert.True(head.Predict(s.Features)[2] < 1e-6f));
    }

    [Fact]
    public void Train_SameSeedTwice_SameWeights()
    {
        var samples = TinyHeads.Clusters(width: 16, labelsWithData: [0, 1], perLabel: 10);

        var first = HeadTrainer.Train(samples, 2, Quick);
        var second = HeadTrainer.Train(samples, 2, Quick);

        Assert.Equal(first.Layers[0].Weights, second.Layers[0].Weights);
        Assert.Equal(first.Layers[1].Bias, second.Layers[1].Bias);
    }

    [Fact]
    public void ToOnnx_TrainedHead_MatchesCSharpForwardPass()
    {
        var samples = TinyHeads.Clusters(width: 24, labelsWithData: [0, 1, 2], perLabel: 8);
        var head = HeadTrainer.Train(samples, 4, Quick);
        using var session = new InferenceSession(HeadOnnxExporter.ToOnnx(head).ToByteArray());

        var batch = samples.SelectMany(s => s.Features).ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(batch, [samples.Count, 24]);
        using var outputs = session.Run(new RunOptions(), [HeadOnnxExporter.InputName], [input], [HeadOnnxExporter.OutputName]);
        var onnx = outputs[0].GetTensorDataAsSpan<float>().ToArray();

        for (var i = 0; i < samples.Count; i++)
        {
            var expected = head.Predict(samples[i].Features);
            for (var c = 0; c < 4; c++) Assert.Equal(expected[c], onnx[i * 4 + c], 1e-4f);
        }
    }
}
