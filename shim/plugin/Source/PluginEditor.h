// The plugin window: prompt and Generate; model, style reference and style mix; the take
// browser (select, star, rename, delete, restore from the trash, reveal, drag onto a DAW track);
// Vary and Inpaint of the selected take; the generation settings; a progress bar and the
// status. It only reads and writes the controller's state and the parameters; its Timer runs
// on the message thread, which every DAW that shows a window has (the plugin's work never
// depends on it: see SidemanController).
#pragma once

#include <juce_audio_processors/juce_audio_processors.h>
#include <juce_gui_basics/juce_gui_basics.h>

#include <memory>
#include <vector>

#include "PluginProcessor.h"

namespace sideman::plugin {

class SidemanEditor final : public juce::AudioProcessorEditor,
                            public juce::DragAndDropContainer,
                            private juce::ListBoxModel,
                            private juce::Timer {
public:
    explicit SidemanEditor(SidemanAudioProcessor& owner);
    ~SidemanEditor() override;

    void paint(juce::Graphics& g) override;
    void resized() override;

private:
    struct LabelledSlider {
        juce::Label label;
        juce::Slider slider { juce::Slider::LinearHorizontal, juce::Slider::TextBoxRight };
        std::unique_ptr<juce::AudioProcessorValueTreeState::SliderAttachment> attachment;
    };

    // ListBoxModel
    int getNumRows() override;
    void paintListBoxItem(int row, juce::Graphics& g, int width, int height, bool selected) override;
    void selectedRowsChanged(int lastRowSelected) override;
    juce::var getDragSourceDescription(const juce::SparseSet<int>& rows) override;
    // DragAndDropContainer: a take dragged out of the window becomes its DAW copy (a WAV file).
    bool shouldDropFilesWhenDraggedExternally(const juce::DragAndDropTarget::SourceDetails& details,
                                              juce::StringArray& files, bool& canMoveFiles) override;

    void timerCallback() override;
    void addSlider(LabelledSlider& s, const char* parameterId, const juce::String& name);
    void addButton(juce::Button& b, std::function<void()> onClick);
    const TakeRecord* selectedTake() const;
    void rename();
    void finishRename(bool keep);
    void showTrash();
    void reveal();
    void chooseStyle();
    void refreshModels(const SessionState& session);
    void refreshProgress();

    SidemanAudioProcessor& processor_;
    juce::Label promptLabel_ { {}, "Prompt" };
    juce::TextEditor prompt_;
    juce::TextButton generate_ { "Generate" };

    juce::Label modelLabel_ { {}, "Model" };
    juce::ComboBox model_;
    juce::TextButton style_ { "Style file..." };
    juce::TextButton clearStyle_ { "x" };
    LabelledSlider styleMix_;

    juce::Label takesLabel_ { {}, "Takes (drag one onto a track)" };
    juce::ListBox takes_ { "Takes", this };
    juce::Label noTakes_;
    juce::TextButton star_ { "Star" }, rename_ { "Rename" }, delete_ { "Delete" }, trash_ { "Trash" },
        reveal_ { "Reveal file" };

    juce::TextButton vary_ { "Vary" }, inpaint_ { "Inpaint bars" };
    juce::ToggleButton loop_ { "Loop" };
    std::unique_ptr<juce::AudioProcessorValueTreeState::ButtonAttachment> loopAttachment_;
    LabelledSlider strength_, inpaintFrom_, inpaintTo_;
    LabelledSlider steps_, guidanceContext_, guidanceClap_, seed_, bars_;

    double progressValue_ = 0.0;
    juce::ProgressBar progress_ { progressValue_ };
    juce::TextEditor status_;
    bool shownFailure_ = false;
    juce::TextEditor renameBox_;
    juce::String renaming_;  // the take being renamed ("" = none)
    std::unique_ptr<juce::FileChooser> chooser_;

    std::vector<TakeRecord> shownTakes_;
    juce::String shownSelection_;
    juce::StringArray shownModels_;
    bool updatingList_ = false;

    JUCE_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(SidemanEditor)
};

}  // namespace sideman::plugin
