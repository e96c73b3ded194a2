using WasteClassifier.Core.Evaluation;

namespace WasteClassifier.Components.Training;

/// <summary>
/// Whether a candidate replaces the active model, and every reason for the answer. <see cref="Refused"/>: the gate found it
/// worse than the active model (not merely kept by promote=manual or left unjudged), so promoting it by hand takes an
/// explicit override.
/// </summary>
public sealed record PromotionDecision(bool Promote, IReadOnlyList<string> Reasons)
{
    public bool Refused { get; init; }

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(new { promoted = Promote, refused = Refused, reasons = Reasons });

    /// <summary>
    /// A decision as <see cref="ToJson"/> wrote it. One recorded before <c>refused</c> existed is refused when it was not
    /// promoted and its first reason is one of the gate's refusals, which <see cref="PromotionGate.Decide"/> lists first.
    /// </summary>
    public static PromotionDecision? FromJson(string? json)
    {
        if (json is null) return null;
        using var document = System.Text.Json.JsonDocument.Parse(json);
        var root = document.RootElement;
        var promoted = root.GetProperty("promoted").GetBoolean();
        var reasons = root.GetProperty("reasons").EnumerateArray().Select(r => r.GetString() ?? "").ToList();
        return new PromotionDecision(promoted, reasons)
        {
            Refused = root.TryGetProperty("refused", out var refused)
                ? refused.ValueKind == System.Text.Json.JsonValueKind.True
                : !promoted && reasons.FirstOrDefault() is { } first && PromotionGate.IsRefusal(first),
        };
    }
}

/// <summary>
/// The promotion gate, applied to candidate and active model scored on the same hold-out: macro-F1 may not drop by
/// more than <see cref="TrainingSettings.MaxMacroF1Drop"/> (not at all when the job trained on the same data as the active
/// model: <paramref name="sameData"/>), and no class the active model recognised may lose more recall than
/// <see cref="TrainingSettings.MaxClassRecallDrop"/> where that is more than one of its images. When the active model lacks a class the
/// candidate has, or never recalls one the hold-out has images of, both are compared on the images of the other classes; the
/// candidate's score on such a class is reported beside the comparison, not averaged into it. A class the hold-out has
/// fewer than <see cref="TrainingSettings.MinClassSupport"/> images of is left out of the macro-F1 average too (its images
/// predicted as an averaged class still count in that class's precision), but its recall is checked as any other's. When
/// only such small classes are left to average, the macro-F1 is not compared and the candidate stays a candidate: refused
/// only if a class loses its recall. When the hold-out has only classes the active model lacks or never recalls, there is
/// nothing to compare and the candidate passes.
/// </summary>
public static class PromotionGate
{
    /// <summary>Whether a reason is one of <see cref="Decide"/>'s refusals (a macro-F1 or a class's recall that fell too far).</summary>
    public static bool IsRefusal(string reason) =>
        (reason.StartsWith("macro-F1 ", StringComparison.Ordinal) && reason.Contains(" below the active model's ", StringComparison.Ordinal))
        || (reason.StartsWith("recall of '", StringComparison.Ordinal) && reason.Contains(" falls from ", StringComparison.Ordinal));

    public static PromotionDecision Decide(ClassificationReport candidate, ClassificationReport? active, TrainingSettings settings, string promoteMode,
        bool sameData = false)
    {
        var refusals = new List<string>();
        var notes = new List<string>();
        var unjudged = false;
        var noMacroF1 = false;
        if (active is null)
        {
            notes.Add("no active model to compare with");
        }
        else
        {
            var full = candidate;
            var fullActive = active;
            // The active model is not scored on images of a class it lacks. One it has but never recalls (the default model's
            // vegetation, which it was never trained on) adds an F1 of 0 to its average. Averaged in, either would move the
            // comparison by up to 1/classes for what the candidate learned, hiding its losses on the other classes. A class
            // with fewer than MinClassSupport hold-out images is set aside too: one image is more than a tenth of its recall
            // (and of its F1, so more than the macro-F1 margin), so it would decide the comparison by chance either way.
            var small = full.PerClass.Where(c => c.Value.Support > 0 && c.Value.Support < settings.MinClassSupport).Select(c => c.Key).ToHashSet();
            var lacking = candidate.Labels.Except(active.Labels)
                .Concat(active.PerClass.Where(c => c.Value.Support > 0 && c.Value.Recall == 0).Select(c => c.Key)).ToHashSet();
            var candidateF1 = candidate.MacroF1;
            var activeF1 = active.MacroF1;
            if (lacking.Count > 0 || small.Count > 0)
            {
                // A small class's images stay in the reports, out of the average only: a candidate that predicts a judged
                // class for them pays for it in that class's precision, where dropping their rows let it send them all there free.
                var kept = candidate.Labels.Intersect(active.Labels).Where(l => !lacking.Contains(l)).ToList();
                var common = kept.Where(l => !small.Contains(l) && full.PerClass[l].Support > 0).ToList();
                candidate = candidate.OnlyTrueLabels(kept);
                active = active.OnlyTrueLabels(kept);
                candidateF1 = MacroF1Over(candidate, common);
                activeF1 = MacroF1Over(active, common);
                var compared = common.Sum(l => full.PerClass[l].Support);
                // With no class to average, the macro-F1 cannot be compared. When classes the active model recalls are there
                // but too small, that is for want of images: the candidate stays a candidate (refused still if it loses
                // their recall). When the hold-out has only classes it lacks or never recalls, there is nothing the
                // candidate could lose: judged by what it learns, as any candidate that passes.
                var nothingToCompare = compared == 0 && !kept.Any(l => full.PerClass[l].Support > 0);
                noMacroF1 = compared == 0;
                unjudged = noMacroF1 && !nothingToCompare;
                notes.Add(unjudged
                    ? $"no class has {settings.MinClassSupport} hold-out image(s) (Training:MinClassSupport) that both models are scored on and the active " +
                      "model recalls: the macro-F1 cannot be compared, so the candidate stays a candidate"
                    : nothingToCompare
                    ? "the hold-out has no image of a class both models have and the active model recalls: no macro-F1 to compare"
                    : $"compared on the {compared} hold-out image(s) of the classes both models have and the active model recalls" +
                      (small.Count > 0 ? $", with at least {settings.MinClassSupport} image(s) each" : ""));
                notes.AddRange(ClassNotes());

                IEnumerable<string> ClassNotes() => full.PerClass.Where(c => c.Value.Support > 0 && !common.Contains(c.Key)).Select(c =>
                    lacking.Contains(c.Key)
                        ? $"'{c.Key}', which the active model {(fullActive.Labels.Contains(c.Key) ? "never recalls" : "lacks")}, scored for the candidate only: " +
                          $"recall {c.Value.Recall:F3} over {c.Value.Support} image(s)"
                        : $"'{c.Key}' left out of the macro-F1: only {c.Value.Support} hold-out image(s), fewer than Training:MinClassSupport ({settings.MinClassSupport}); " +
                          $"recall {c.Value.Recall:F3}, active {fullActive.PerClass[c.Key].Recall:F3}");
            }
            // The tolerance is for what new data may cost; a job that trained on the same data as the active model brings
            // nothing new, and allowing its drop let repeated retrains lower macro-F1 a step at a time.
            var allowed = sameData ? 0 : settings.MaxMacroF1Drop;
            var drop = activeF1 - candidateF1;
            if (!noMacroF1 && drop > allowed)
                refusals.Add($"macro-F1 {candidateF1:F4} is {drop:F4} below the active model's {activeF1:F4} (allowed drop {allowed:F4}" +
                    (sameData ? ": the job trained on the same data as the active model, so only a candidate at least as good replaces it)" : ")"));
            else if (!noMacroF1)
                notes.Add($"macro-F1 {candidateF1:F4} vs active {activeF1:F4}");

            // Every class the active model recalls keeps its recall check, a class with few hold-out images too: only the
            // macro-F1 average leaves those aside. A class's recall is its own row, the same in the full reports.
            foreach (var (label, before) in fullActive.PerClass.Where(c => c.Value.Support > 0 && c.Value.Recall > 0))
            {
                var after = full.PerClass.TryGetValue(label, out var m) ? m.Recall : 0;
                // One image is no evidence of a loss: in a class of fewer than 1 / MaxClassRecallDrop images (20 by default)
                // it alone would exceed the allowed drop.
                var lostImages = (before.Recall - after) * before.Support;
                if (before.Recall - after > settings.MaxClassRecallDrop && lostImages > 1.5)
                    refusals.Add($"recall of '{label}' falls from {before.Recall:F3} to {after:F3} (allowed drop {settings.MaxClassRecallDrop:F3}, or a single image of its {before.Support})");
            }
            foreach (var (label, gained) in full.PerClass.Where(c => c.Value.Support > 0 && c.Value.Recall > 0
                && (!fullActive.PerClass.TryGetValue(c.Key, out var before) || before.Recall == 0)))
                notes.Add($"'{label}' is newly recognised (recall {gained.Recall:F3})");
        }

        // A recall lost refuses an unjudged candidate too: promoting it by hand then takes force.
        if (refusals.Count > 0) return new PromotionDecision(false, refusals.Concat(notes).ToList()) { Refused = true };
        if (unjudged) return new PromotionDecision(false, notes);
        if (promoteMode == PromoteModes.Manual)
            return new PromotionDecision(false, ["promote=manual: the candidate passed the gate and waits for POST /v1/models/{version}/promote", .. notes]);
        return new PromotionDecision(true, ["passed the promotion gate", .. notes]);
    }

    // The mean F1 of the classes judged; each class's precision counts every image predicted as it.
    private static double MacroF1Over(ClassificationReport report, IReadOnlyCollection<string> labels) =>
        labels.Count == 0 ? 0 : Math.Round(labels.Average(l => report.PerClass[l].F1), 4);

    /// <summary>
    /// Whether a job trained on the same data as the active model. By the fingerprint of its training images and labels
    /// (<see cref="WasteClassifier.Core.Training.TrainingDataFingerprint"/>) when the active model's card records one
    /// (<c>training.data_fingerprint</c>, written by jobs and <c>wastectl train</c>): the counts alone take a relabelled or
    /// replaced image for the same data, and so allowed a job with new data no macro-F1 drop at all. Otherwise by its images
    /// per label (readable, training side) against those the card records (<c>training.images_per_label</c>, as the bundled
    /// model's card and those written before the fingerprint do). A card with neither (an imported model) never counts as the same.
    /// </summary>
    public static bool SameTrainingData(System.Text.Json.JsonElement? activeTraining, IReadOnlyDictionary<string, int> training, string? fingerprint)
    {
        if (activeTraining is not { ValueKind: System.Text.Json.JsonValueKind.Object } card) return false;
        if (fingerprint is not null && card.TryGetProperty("data_fingerprint", out var recordedFingerprint)
            && recordedFingerprint.ValueKind == System.Text.Json.JsonValueKind.String)
            return recordedFingerprint.GetString() == fingerprint;
        if (!card.TryGetProperty("images_per_label", out var recorded) || recorded.ValueKind != System.Text.Json.JsonValueKind.Object)
            return false;
        var before = recorded.EnumerateObject().Where(p => p.Value.ValueKind == System.Text.Json.JsonValueKind.Number)
            .ToDictionary(p => p.Name, p => p.Value.GetInt32());
        return training.Values.Sum() > 0 && before.Keys.Union(training.Keys)
            .All(label => before.GetValueOrDefault(label) == training.GetValueOrDefault(label));
    }
}
