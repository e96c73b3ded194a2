namespace WasteClassifier.Infrastructure.Persistence;

/// <summary>An image with a label given by a person: uploaded for training, or an operator's correction of a result.</summary>
public class LabelledSample
{
    public Guid Id { get; set; }
    public Guid ImageId { get; set; }
    public StoredImage? Image { get; set; }
    public required string Label { get; set; }

    /// <summary>upload (sent with a training job) or feedback (PUT /v1/classifications/{id}/label).</summary>
    public required string Origin { get; set; }

    public Guid? ClassificationId { get; set; }
    public Guid? TrainingJobId { get; set; }
    public DateTime CreatedAt { get; set; }
}

public static class SampleOrigin
{
    public const string Upload = "upload";
    public const string Feedback = "feedback";
}
