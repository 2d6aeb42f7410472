namespace ReaperProxy.Fuzz;

/// <summary>
/// A property the harness checks was broken. It escapes the target so AFL records the input as a crash;
/// its message says which property and where.
/// </summary>
internal sealed class PropertyViolation(string message) : Exception(message)
{
    public static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new PropertyViolation(message);
        }
    }
}
