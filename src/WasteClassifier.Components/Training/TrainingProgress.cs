namespace WasteClassifier.Components.Training;

/// <summary>Where a running job is; written by the training thread, read by the heartbeat that stores it.</summary>
public sealed class TrainingProgress
{
    private readonly Lock _gate = new();
    private string _stage = TrainingStages.Features;
    private double _percent;

    public void Report(string stage, double percent)
    {
        lock (_gate)
        {
            _stage = stage;
            _percent = Math.Clamp(percent, 0, 100);
        }
    }

    public (string Stage, double Percent) Read()
    {
        lock (_gate) return (_stage, _percent);
    }
}

public static class TrainingStages
{
    public const string Features = "features";
    public const string Fitting = "fitting";
    public const string Evaluating = "evaluating";
    public const string Registering = "registering";
}
