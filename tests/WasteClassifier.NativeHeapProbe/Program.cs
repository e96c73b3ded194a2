using System.Runtime.InteropServices;
using Google.Protobuf;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using static WasteClassifier.Core.Inference.OnnxGraphBuilder;

// Loads a model, then asks glibc for a block after freeing a slightly larger one, and reports whether the block got a
// mapping of its own (exit 0) or came from a malloc arena (exit 1). Exit 2: the question cannot be answered here.
// Left alone, glibc raises its mmap threshold to the largest block freed so far (up to 32 MB), so the block would come
// from an arena and stay there when freed; loading a model switches that growth off (NativeHeap).
if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out _)) return Report(2, "not glibc");
LoadTinyModel();

// A block larger than all the free space in the arenas cannot be carved from them: glibc maps it on its own only while it
// is over the mmap threshold.
var size = (long)mallinfo2().fordblks + (8 << 20);
// Over glibc's largest dynamic threshold the two behaviours cannot be told apart.
if (size + (1 << 20) > 32 << 20) return Report(2, $"{size >> 20} MB free in the malloc arenas at start");
Marshal.FreeHGlobal(Marshal.AllocHGlobal((nint)(size + (1 << 20))));
var block = Marshal.AllocHGlobal((nint)size);
try
{
    // glibc's chunk header, the word before the pointer malloc returns: size with flag bits; 0x2 is IS_MMAPPED.
    return (Marshal.ReadInt64(block, -8) & 0x2) != 0
        ? Report(0, $"a {size >> 20} MB block was mapped on its own")
        : Report(1, $"a {size >> 20} MB block came from a malloc arena");
}
finally
{
    Marshal.FreeHGlobal(block);
}

static int Report(int exitCode, string message)
{
    Console.WriteLine(message);
    return exitCode;
}

static void LoadTinyModel()
{
    var directory = Directory.CreateTempSubdirectory("native-heap-probe").FullName;
    try
    {
        var graph = new Onnx.GraphProto { Name = "tiny" };
        graph.Input.Add(BatchedFloat("pixels", 1, 1, 3));
        graph.Output.Add(BatchedFloat("probabilities", 3));
        graph.Node.Add(Node("Flatten", "flatten", ["pixels"], ["probabilities"], IntAttribute("axis", 1)));
        File.WriteAllBytes(Path.Combine(directory, "tiny.onnx"), Model(graph, "test").ToByteArray());
        TrainedModelWriter.SaveCard(directory, new ModelCard
        {
            Version = "tiny",
            Labels = ["a", "b", "c"],
            Input = new ModelInputSpec { Width = 1, Height = 1, Layout = TensorLayout.Nhwc },
            Onnx = "tiny.onnx",
        });
        using var classifier = ModelLoader.Load(directory, new InferenceOptions { IntraOpThreads = 1 });
    }
    finally
    {
        Directory.Delete(directory, recursive: true);
    }
}

[DllImport("libc.so.6", ExactSpelling = true)]
static extern MallInfo2 mallinfo2();

#pragma warning disable IDE1006, CS0649 // glibc's names; filled in by native code
internal struct MallInfo2
{
    public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
}
#pragma warning restore IDE1006, CS0649
